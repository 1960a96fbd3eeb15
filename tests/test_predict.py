"""ntkrs.predict: training dynamics and posteriors of infinitely wide networks, against closed
forms on tiny problems, explicit gradient steps on a linear model, plain numpy/scipy formulas
(linear solves, scipy.linalg.expm, affine maps of Gaussians) written here independently of the
eigendecomposition used by the implementation, and hypothesis property tests.

Conventions under test (neural-tangents' nt.predict): loss 1/(2N)‖f − Y‖² with N = y_train.size,
times in steps of the learning rate, diag_reg relative to trace(K)/n unless absolute.
"""

from __future__ import annotations

import math
import warnings

import ntkrs as nk
import numpy as np
import pytest
import scipy.linalg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ntkrs import predict

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RNG = np.random.default_rng(20260128)


def random_psd(n: int, rng: np.random.Generator, rank: int | None = None, jitter: float = 0.1) -> np.ndarray:
    """A well-conditioned symmetric positive-definite matrix (or PSD of the given rank)."""
    a = rng.standard_normal((n, rank or n))
    k = a @ a.T / (rank or n)
    if rank is None:
        k += jitter * np.eye(n)
    return k


def joint_kernels(n: int, m: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """NNGP and NTK blocks of one joint (n + m) training-and-test set, each PD (a real network's)."""
    net = nk.mlp(2, 512, "erf", W_std=1.3, b_std=0.2)
    x = rng.standard_normal((n + m, 4))
    k = net.kernel(x)
    return {"x": x, "net": net, "K": k.nngp, "T": k.ntk}


def flow_reference(theta: np.ndarray, theta_x: np.ndarray, y: np.ndarray, f0: np.ndarray, g0: np.ndarray,
                   eta_t: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """f_t on train and test by scipy.linalg.expm and a linear solve (no eigendecomposition)."""
    decay = np.eye(len(theta)) - scipy.linalg.expm(-eta_t * theta / size)
    r0 = y - f0
    return f0 + decay @ r0, g0 + theta_x @ np.linalg.solve(theta, decay @ r0)


# --- gradient_descent_mse: closed forms ---------------------------------------------------------


@pytest.mark.parametrize("outputs", [None, 3])
def test_one_training_point_follows_the_scalar_exponential(outputs):
    """n = 1: f_t = f0 + (1 − e^{−ηθt/N})(y − f0) on the point, g0 + κ/θ·(same) on a test point, N = y.size."""
    theta, kappa, eta = 2.5, 0.7, 0.3
    y = np.array([1.5]) if outputs is None else np.array([[1.5, -0.5, 2.0]])
    f0 = np.full_like(y, 0.2)
    g0 = np.full((1, *y.shape[1:]), -0.4)
    p = predict.gradient_descent_mse(np.array([[theta]]), y, learning_rate=eta)
    for t in (0.0, 0.1, 1.0, 7.0, 100.0):
        decay = 1 - math.exp(-eta * theta * t / y.size)
        ftr, fte = p(t, f0, g0, np.array([[kappa]]))
        np.testing.assert_allclose(ftr, f0 + decay * (y - f0), rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(fte, g0 + kappa / theta * decay * (y - f0), rtol=1e-14, atol=1e-15)


def test_diagonal_kernel_decays_each_coordinate_independently():
    """Θ = diag(λ): coordinate i relaxes to y_i at rate ηλ_i/n, untouched by the others."""
    lam = np.array([0.1, 1.0, 3.0, 10.0])
    y, f0, eta = np.array([1.0, -2.0, 0.5, 3.0]), np.array([0.3, 0.1, -0.2, 0.0]), 0.5
    p = predict.gradient_descent_mse(np.diag(lam), y, learning_rate=eta)
    ts = np.array([0.0, 0.01, 0.5, 2.0, 40.0])
    got = p(ts, f0)
    want = f0 + (1 - np.exp(-eta * lam[None, :] * ts[:, None] / 4)) * (y - f0)
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15)


def test_time_zero_returns_the_initial_outputs_exactly():
    """t = 0: f_0 on train and test, whatever the kernels."""
    rng = np.random.default_rng(1)
    k, y = random_psd(6, rng), rng.standard_normal((6, 2))
    ktd, f0, g0 = rng.standard_normal((3, 6)), rng.standard_normal((6, 2)), rng.standard_normal((3, 2))
    ftr, fte = predict.gradient_descent_mse(k, y)(0.0, f0, g0, ktd)
    np.testing.assert_array_equal(ftr, f0)
    np.testing.assert_array_equal(fte, g0)


def test_infinite_time_is_kernel_regression():
    """t = None (Cholesky), t = ∞ and t very large (eigendecomposition) all give K_x K⁻¹(Y − f0) + g0
    on the test set and Y on the training set."""
    rng = np.random.default_rng(2)
    k, y = random_psd(8, rng), rng.standard_normal(8)
    ktd, f0, g0 = rng.standard_normal((5, 8)), rng.standard_normal(8), rng.standard_normal(5)
    want = g0 + ktd @ np.linalg.solve(k, y - f0)
    p = predict.gradient_descent_mse(k, y)
    for t in (None, np.inf, 1e6):
        ftr, fte = p(t, f0, g0, ktd)
        np.testing.assert_allclose(ftr, y, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(fte, want, rtol=1e-11, atol=1e-12)


def test_flow_matches_matrix_exponential_on_a_network_kernel():
    """Any t: the eigenbasis solution equals expm(−ηΘt/N) computed by scipy, train and test."""
    rng = np.random.default_rng(3)
    ker = joint_kernels(10, 4, rng)
    theta, theta_x = ker["T"][:10, :10], ker["T"][10:, :10]
    y, f0, g0 = rng.standard_normal((10, 2)), rng.standard_normal((10, 2)), rng.standard_normal((4, 2))
    p = predict.gradient_descent_mse(theta, y, learning_rate=0.7)
    for t in (0.3, 4.0, 50.0):
        ftr, fte = p(t, f0, g0, theta_x)
        rtr, rte = flow_reference(theta, theta_x, y, f0, g0, 0.7 * t, y.size)
        np.testing.assert_allclose(ftr, rtr, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(fte, rte, rtol=1e-10, atol=1e-12)


def test_explicit_gradient_steps_on_a_linear_model_match_the_flow():
    """f(θ) = f0 + J(θ − θ0), Θ = JJᵀ: S explicit GD steps of rate η on 1/(2N)‖f − y‖² agree with the
    flow at t = S up to the discretisation bound ‖(1−a)^S − e^{−aS}‖ ≤ S·a²/2 per mode (a = ηλ/N)."""
    rng = np.random.default_rng(4)
    n, m, p_, steps = 8, 4, 60, 4000
    jac, jac_x = rng.standard_normal((n, p_)) / math.sqrt(p_), rng.standard_normal((m, p_)) / math.sqrt(p_)
    theta, theta_x = jac @ jac.T, jac_x @ jac.T
    y, f0, g0 = rng.standard_normal(n), rng.standard_normal(n), rng.standard_normal(m)
    lam = np.linalg.eigvalsh(theta)
    eta = 2e-3 * n / lam.max()  # a_max = η λ_max / N = 2e-3
    w = np.zeros(p_)
    for _ in range(steps):
        w -= eta * jac.T @ (f0 + jac @ w - y) / n
    f_train, f_test = f0 + jac @ w, g0 + jac_x @ w
    ftr, fte = predict.gradient_descent_mse(theta, y, learning_rate=eta)(steps, f0, g0, theta_x)
    a_max = eta * lam.max() / n
    r0 = np.linalg.norm(y - f0)
    assert np.linalg.norm(ftr - f_train) <= steps * a_max**2 / 2 * r0
    assert np.linalg.norm(fte - f_test) <= np.linalg.norm(theta_x, 2) * steps * a_max * eta / (2 * n) * r0
    # and the bound is not vacuous: training moved the outputs by much more than it
    assert np.linalg.norm(ftr - f0) > 100 * steps * a_max**2 / 2 * r0


def test_learning_rate_only_rescales_time():
    """(η, t) and (1, η·t) give the same outputs."""
    rng = np.random.default_rng(5)
    k, y, ktd = random_psd(5, rng), rng.standard_normal(5), rng.standard_normal((2, 5))
    a = predict.gradient_descent_mse(k, y, learning_rate=0.25)(8.0, 0.0, 0.0, ktd)
    b = predict.gradient_descent_mse(k, y, learning_rate=1.0)(2.0, 0.0, 0.0, ktd)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-13, atol=1e-15)


def test_outputs_share_the_kernel_and_the_loss_normalisation_counts_them():
    """Y of shape (n, O) trains each column like a 1-output problem at time t/O (N = n·O)."""
    rng = np.random.default_rng(6)
    k, y, ktd = random_psd(6, rng), rng.standard_normal((6, 3)), rng.standard_normal((4, 6))
    ftr, fte = predict.gradient_descent_mse(k, y)(2.0, 0.0, 0.0, ktd)
    for o in range(3):
        a, b = predict.gradient_descent_mse(k, y[:, o])(2.0 / 3, 0.0, 0.0, ktd)
        np.testing.assert_allclose(ftr[:, o], a, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(fte[:, o], b, rtol=1e-12, atol=1e-14)


def test_array_of_times_adds_leading_axes_equal_to_scalar_calls():
    """t of shape (2, 3) → outputs (2, 3, n, O) and (2, 3, m, O), each slice the scalar-t result."""
    rng = np.random.default_rng(7)
    k, y, ktd = random_psd(5, rng), rng.standard_normal((5, 2)), rng.standard_normal((3, 5))
    p = predict.gradient_descent_mse(k, y)
    ts = np.array([[0.0, 0.5, 1.0], [3.0, 10.0, np.inf]])
    ftr, fte = p(ts, 0.1, -0.2, ktd)
    assert ftr.shape == (2, 3, 5, 2) and fte.shape == (2, 3, 3, 2)
    for idx in np.ndindex(2, 3):
        a, b = p(float(ts[idx]), 0.1, -0.2, ktd)
        np.testing.assert_allclose(ftr[idx], a, rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(fte[idx], b, rtol=1e-14, atol=1e-15)


def test_return_conventions_follow_neural_tangents():
    """No k_test_train → fx_train_t only; with it → (train, test); fx_train_0=None → test only."""
    rng = np.random.default_rng(8)
    k, y, ktd = random_psd(4, rng), rng.standard_normal(4), rng.standard_normal((2, 4))
    p = predict.gradient_descent_mse(k, y)
    assert isinstance(p(1.0), np.ndarray) and p(1.0).shape == (4,)
    both = p(1.0, 0.0, 0.0, ktd)
    assert isinstance(both, tuple) and [a.shape for a in both] == [(4,), (2,)]
    only_test = p(1.0, None, 0.0, ktd)
    np.testing.assert_allclose(only_test, both[1], rtol=1e-14)
    assert p(1.0, 0.0, None, ktd).shape == (4,)


@pytest.mark.parametrize("absolute", [False, True])
def test_diag_reg_adds_a_scaled_identity(absolute):
    """diag_reg = r trains with Θ + r·(trace Θ/n)·I (or + r·I when absolute) — t finite and t = None."""
    rng = np.random.default_rng(9)
    k, y, ktd = random_psd(6, rng), rng.standard_normal(6), rng.standard_normal((3, 6))
    r = 0.3
    shift = r if absolute else r * np.trace(k) / 6
    a = predict.gradient_descent_mse(k, y, diag_reg=r, diag_reg_absolute_scale=absolute)
    b = predict.gradient_descent_mse(k + shift * np.eye(6), y)
    for t in (1.5, None):
        for u, v in zip(a(t, 0.0, 0.0, ktd), b(t, 0.0, 0.0, ktd), strict=True):
            np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(a(None, None, 0.0, ktd), ktd @ np.linalg.solve(k + shift * np.eye(6), y), rtol=1e-12)


def test_eigendecomposition_and_cholesky_paths_agree_on_network_kernels():
    """t = None (Cholesky) and t = ∞ (clamped eigendecomposition) give the same test predictions, and
    the same as gp_inference's posterior mean, for the NNGP and the NTK of a real network."""
    rng = np.random.default_rng(10)
    ker = joint_kernels(30, 6, rng)
    y = rng.standard_normal((30, 2))
    for key in ("K", "T"):
        kdd, ktd = ker[key][:30, :30], ker[key][30:, :30]
        p = predict.gradient_descent_mse(kdd, y, diag_reg=1e-6)
        chol = p(None, None, 0.0, ktd)
        eig = p(np.inf, None, 0.0, ktd)
        gp = predict.gp_inference(kdd, y, diag_reg=1e-6)("nngp", ktd)
        scale = np.abs(chol).max()
        np.testing.assert_allclose(eig, chol, rtol=0, atol=1e-9 * scale)
        np.testing.assert_allclose(gp, chol, rtol=0, atol=1e-12 * scale)


# --- monotone loss and PSD covariances (hypothesis) -----------------------------------------------


@SETTINGS
@given(n=st.integers(1, 7), seed=st.integers(0, 2**32 - 1), rank=st.integers(1, 7),
       ts=st.lists(st.floats(0, 1e3, allow_nan=False), min_size=2, max_size=6))
def test_training_loss_never_increases(n, seed, rank, ts):
    """Gradient flow: ‖f_t(X) − Y‖ is non-increasing in t, for any PSD kernel (even singular)."""
    rng = np.random.default_rng(seed)
    k = random_psd(n, rng, rank=min(rank, n))
    k = (k + k.T) / 2 + 1e-3 * np.eye(n)
    y, f0 = rng.standard_normal(n), rng.standard_normal(n)
    ts = np.sort(np.asarray(ts))
    f = predict.gradient_descent_mse(k, y)(ts, f0)
    loss = np.linalg.norm(f - y, axis=-1)
    assert np.all(np.diff(loss) <= 1e-12 * (1 + loss[:-1]))


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), t=st.one_of(st.none(), st.floats(0, 1e4, allow_nan=False)),
       test=st.booleans())
def test_ensemble_covariances_are_symmetric_and_positive_semidefinite(seed, t, test):
    """Ensemble covariances (both kernels, any t, train or test set) are symmetric PSD."""
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((6, 3)), rng.standard_normal(6)
    xt = rng.standard_normal((4, 3)) if test else None
    net = nk.mlp(1, 64, "relu", W_std=1.4, b_std=0.3)
    out = predict.gradient_descent_mse_ensemble(net, x, y, diag_reg=1e-8)(xt, t, compute_cov=True)
    for g in out:
        cov = g.covariance
        scale = np.abs(cov).max() + 1e-300
        np.testing.assert_allclose(cov, cov.T, rtol=0, atol=1e-12 * scale)
        assert np.linalg.eigvalsh((cov + cov.T) / 2).min() >= -1e-9 * scale


# --- gp_inference against direct formulas -----------------------------------------------------


def test_gp_inference_matches_direct_posterior_formulas():
    """NNGP / NTK-GP posteriors = standard GP conditioning by np.linalg.solve; the "ntk" covariance is
    the covariance of f_∞(x) = f0(x) + Θ_xΘ⁻¹(Y − f0(X)) for f0 ~ GP(0, K) (an affine map of a Gaussian)."""
    rng = np.random.default_rng(11)
    n, m = 12, 5
    ker = joint_kernels(n, m, rng)
    K, T = ker["K"], ker["T"]
    y = rng.standard_normal((n, 2))
    kdd = nk.Kernel(K[:n, :n], T[:n, :n])
    ktd = nk.Kernel(K[n:, :n], T[n:, :n])
    ktt = nk.Kernel(K[n:, n:], T[n:, n:])
    out = predict.gp_inference(kdd, y)(("nngp", "ntk", "ntkgp"), ktd, ktt)
    assert type(out).__name__ == "Gaussians" and out._fields == ("nngp", "ntk", "ntkgp")
    for g, kern in (("nngp", K), ("ntkgp", T)):
        mean = kern[n:, :n] @ np.linalg.solve(kern[:n, :n], y)
        cov = kern[n:, n:] - kern[n:, :n] @ np.linalg.solve(kern[:n, :n], kern[:n, n:])
        np.testing.assert_allclose(getattr(out, g).mean, mean, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(getattr(out, g).covariance, cov, rtol=1e-9, atol=1e-12)
    # "ntk": f_∞ = A f0(X ∪ X*) + b with A = [−Θ_xΘ⁻¹, I], f0 ~ N(0, K_joint)
    a = np.hstack([-T[n:, :n] @ np.linalg.inv(T[:n, :n]), np.eye(m)])
    np.testing.assert_allclose(out.ntk.mean, T[n:, :n] @ np.linalg.solve(T[:n, :n], y), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(out.ntk.covariance, a @ K @ a.T, rtol=1e-8, atol=1e-11)


def test_gp_inference_single_get_single_kernel_and_training_set():
    """An array kernel serves any get; a string get returns one value; no k_test_train → N(Y, 0)."""
    rng = np.random.default_rng(12)
    k, y, ktd = random_psd(5, rng), rng.standard_normal(5), rng.standard_normal((3, 5))
    p = predict.gp_inference(k, y, diag_reg=0.1)
    mean = p("nngp", ktd)
    np.testing.assert_allclose(mean, ktd @ np.linalg.solve(k + 0.1 * np.trace(k) / 5 * np.eye(5), y), rtol=1e-12)
    train = p("ntkgp", None, True)
    assert isinstance(train, predict.Gaussian)
    np.testing.assert_array_equal(train.mean, y)
    np.testing.assert_array_equal(train.covariance, np.zeros((5, 5)))


# --- gradient_descent_mse_ensemble --------------------------------------------------------------


def ensemble_reference(K: np.ndarray, T: np.ndarray, y: np.ndarray, n: int, eta_t: float | None,
                       test: bool) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of f_t = f0 + (flow applied to Y − f0(X)) for f0 ~ N(0, K_joint), the flow
    driven by T (NTK: all layers trained; T = K: last layer only), by expm and solves."""
    size = y.size
    tn = T[:n, :n]
    decay = np.eye(n) if eta_t is None else np.eye(n) - scipy.linalg.expm(-eta_t * tn / size)
    if test:
        gain = T[n:, :n] @ np.linalg.solve(tn, decay)  # f_t(x*) = f0(x*) + gain (Y − f0(X))
        a = np.hstack([-gain, np.eye(len(T) - n)])
    else:
        gain = decay
        a = np.hstack([np.eye(n) - gain, np.zeros((n, len(T) - n))])
    return gain @ y, a @ K @ a.T


@pytest.mark.parametrize("test", [False, True])
def test_ensemble_mean_and_covariance_are_those_of_the_linearised_flow_over_initialisations(test):
    """For t ∈ {0, 0.5, 4, 60, None}: "ntk" = flow with Θ, "nngp" = flow with K, f0 ~ GP(0, K) jointly on
    train and test; mean and covariance of that affine map of a Gaussian (computed with expm)."""
    rng = np.random.default_rng(13)
    n, m = 9, 4
    x = rng.standard_normal((n + m, 3))
    net = nk.mlp(2, 256, "relu", W_std=1.5, b_std=0.1)
    k = net.kernel(x)
    y = rng.standard_normal((n, 2))
    p = predict.gradient_descent_mse_ensemble(net, x[:n], y, learning_rate=2.0)
    for t in (0.0, 0.5, 4.0, 60.0, None):
        out = p(x[n:] if test else None, t, compute_cov=True)
        for g, drive in (("nngp", k.nngp), ("ntk", k.ntk)):
            mean, cov = ensemble_reference(k.nngp, drive, y, n, None if t is None else 2.0 * t, test)
            scale = np.abs(k.nngp).max()
            np.testing.assert_allclose(getattr(out, g).mean, mean, rtol=0, atol=1e-9 * np.abs(y).max())
            np.testing.assert_allclose(getattr(out, g).covariance, cov, rtol=0, atol=1e-9 * scale)


def test_ensemble_mean_agrees_with_gradient_descent_mse_from_zero_outputs():
    """The ensemble mean is gradient_descent_mse from f0 = 0 on the same kernel; means only, string get."""
    rng = np.random.default_rng(14)
    x, xt, y = rng.standard_normal((10, 3)), rng.standard_normal((3, 3)), rng.standard_normal(10)
    net = nk.mlp(1, 64, "gelu", W_std=1.2, b_std=0.05)
    kdd, ktd = net.kernel(x, get="ntk"), net.kernel(xt, x, get="ntk")
    ens = predict.gradient_descent_mse_ensemble(net, x, y, learning_rate=0.5)
    single = predict.gradient_descent_mse(kdd, y, learning_rate=0.5)
    ts = np.array([0.0, 1.0, 20.0])
    np.testing.assert_allclose(ens(xt, ts, get="ntk"), single(ts, None, 0.0, ktd), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ens(None, ts, get="ntk"), single(ts, 0.0), rtol=1e-12, atol=1e-14)


def test_ensemble_nngp_at_infinite_time_is_the_bayesian_posterior():
    """Training only the last layer to convergence gives the NNGP posterior (Lee et al. 2019; docs (43))."""
    rng = np.random.default_rng(15)
    x, xt, y = rng.standard_normal((8, 3)), rng.standard_normal((3, 3)), rng.standard_normal(8)
    net = nk.mlp(2, 64, "erf", W_std=1.5, b_std=0.2)
    K, Kx, Kxx = net.kernel(x, get="nngp"), net.kernel(xt, x, get="nngp"), net.kernel(xt, get="nngp")
    out = predict.gradient_descent_mse_ensemble(net, x, y)(xt, None, get="nngp", compute_cov=True)
    np.testing.assert_allclose(out.mean, Kx @ np.linalg.solve(K, y), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(out.covariance, Kxx - Kx @ np.linalg.solve(K, Kx.T), rtol=1e-8, atol=1e-11)


# --- max_learning_rate ----------------------------------------------------------------------------


def test_max_learning_rate_is_the_stability_edge_of_discrete_gradient_descent():
    """η_max = 2N/λ_max: the GD residual map I − η/N·Θ contracts just below it and diverges just above."""
    rng = np.random.default_rng(16)
    n = 7
    k, y = random_psd(n, rng), rng.standard_normal((n, 2))
    lr = predict.max_learning_rate(k, y.size)
    assert lr == pytest.approx(2 * y.size / np.linalg.eigvalsh(k).max(), rel=1e-12)
    assert predict.max_learning_rate(k) == pytest.approx(2 * n / np.linalg.eigvalsh(k).max(), rel=1e-12)
    assert predict.max_learning_rate(k, y.size, momentum=0.5) == pytest.approx(1.5 * lr, rel=1e-12)
    for factor, grows in ((0.98, False), (1.02, True)):
        r = y.copy()
        for _ in range(2000):
            r = r - factor * lr / y.size * (k @ r)
        assert (np.linalg.norm(r) > np.linalg.norm(y)) == grows


# --- errors and warnings --------------------------------------------------------------------------

K3 = random_psd(3, RNG)
Y3 = np.array([1.0, 2.0, 3.0])


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        pytest.param(lambda: predict.gradient_descent_mse(np.ones((3, 2)), Y3), ValueError, "k_train_train",
                     id="non-square"),
        pytest.param(lambda: predict.gradient_descent_mse(K3[:2, :2], Y3), ValueError, "k_train_train", id="size"),
        pytest.param(lambda: predict.gradient_descent_mse(np.where(np.eye(3) > 0, np.nan, K3), Y3), ValueError,
                     "k_train_train.*NaN", id="nan-kernel"),
        pytest.param(lambda: predict.gradient_descent_mse(K3, [1.0, np.inf, 0.0]), ValueError, "y_train", id="inf-y"),
        pytest.param(lambda: predict.gradient_descent_mse(K3, np.ones((3, 1, 1))), ValueError, "y_train", id="3d-y"),
        pytest.param(lambda: predict.gradient_descent_mse(K3, ["a", "b", "c"]), TypeError, "y_train", id="str-y"),
        pytest.param(lambda: predict.gradient_descent_mse(K3, Y3, learning_rate=0), ValueError, "learning_rate",
                     id="lr-0"),
        pytest.param(lambda: predict.gradient_descent_mse(K3, Y3, diag_reg=-1), ValueError, "diag_reg", id="reg<0"),
        pytest.param(lambda: predict.gradient_descent_mse(K3, Y3)(-1.0), ValueError, "t", id="t<0"),
        pytest.param(lambda: predict.gradient_descent_mse(K3, Y3)([1.0, np.nan]), ValueError, "t.*NaN", id="t-nan"),
        pytest.param(lambda: predict.gradient_descent_mse(K3, Y3)("soon"), TypeError, "t", id="t-str"),
        pytest.param(lambda: predict.gradient_descent_mse(K3, Y3)(1.0, 0.0, 0.0, np.ones((2, 4))), ValueError,
                     "k_test_train", id="ktd-cols"),
        pytest.param(lambda: predict.gradient_descent_mse(K3, Y3)(1.0, 0.0, np.ones(2)), ValueError, "k_test_train",
                     id="fx_test_0-without-ktd"),
        pytest.param(lambda: predict.gradient_descent_mse(K3, Y3)(1.0, np.ones(4)), ValueError, "fx_train_0",
                     id="fx_train_0-shape"),
        pytest.param(lambda: predict.gradient_descent_mse(K3, Y3)(1.0, None), ValueError, "nothing", id="nothing"),
        pytest.param(lambda: predict.gp_inference(K3, Y3)("bogus", K3), ValueError, "get", id="gp-get"),
        pytest.param(lambda: predict.gp_inference(K3, Y3)(3, K3), TypeError, "get", id="gp-get-type"),
        pytest.param(lambda: predict.gp_inference(K3, Y3)("ntk", K3, K3), ValueError, "both kernels",
                     id="gp-ntk-cov-needs-both"),
        pytest.param(lambda: predict.gp_inference(nk.Kernel(K3, None), Y3)("ntk", K3), ValueError, "ntk",
                     id="gp-missing-field"),
        pytest.param(lambda: predict.gp_inference(K3, Y3)("nngp", K3, np.ones((2, 2))), ValueError, "k_test_test",
                     id="gp-ktt-shape"),
        pytest.param(lambda: predict.max_learning_rate(np.ones((2, 3))), ValueError, "k_train_train", id="lr-shape"),
        pytest.param(lambda: predict.max_learning_rate(K3, 2), ValueError, "y_train_size", id="lr-size"),
    ],
)
def test_bad_inputs_raise_errors_naming_the_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"get": "ntkgp"}, ValueError, "get"),
        ({"get": ("nngp", "nngp")}, ValueError, "get"),
        ({"x_test": np.ones((2, 5))}, ValueError, "x_test"),
        ({"x_test": np.full((2, 3), np.nan)}, ValueError, "x_test"),
        ({"t": -2.0}, ValueError, "t"),
        ({"compute_cov": "yes"}, TypeError, "compute_cov"),
    ],
)
def test_ensemble_bad_arguments_are_rejected(kwargs, exc, match):
    p = predict.gradient_descent_mse_ensemble(nk.mlp(1, 8), np.ones((3, 3)) * np.arange(3)[:, None], Y3)
    with pytest.raises(exc, match=match):
        p(**kwargs)


def test_ensemble_constructor_checks_its_arguments():
    with pytest.raises(TypeError, match="net"):
        predict.gradient_descent_mse_ensemble(lambda x: x, np.ones((3, 2)), Y3)
    with pytest.raises(ValueError, match="y_train"):
        predict.gradient_descent_mse_ensemble(nk.mlp(1, 8), np.ones((4, 2)), Y3)


def test_kernel_that_is_not_positive_definite_warns_and_clamps():
    """A kernel with a negative eigenvalue: RuntimeWarning naming the smallest eigenvalue and the
    condition number; the negative mode is clamped (does not train) and results stay finite; t=None
    falls back from the failed Cholesky to the pseudo-inverse."""
    v = scipy.linalg.qr(np.random.default_rng(17).standard_normal((4, 4)))[0]
    lam = np.array([-0.5, 0.5, 1.0, 2.0])
    k = (v * lam) @ v.T
    y = v[:, 0] + v[:, 3]
    p = predict.gradient_descent_mse(k, y)
    with pytest.warns(RuntimeWarning, match=r"smallest eigenvalue -0\.5.*condition number.*4"):
        f = p(1e9)
    np.testing.assert_allclose(f, v[:, 3], atol=1e-12)  # the mode along v0 never trains
    with pytest.warns(RuntimeWarning, match="smallest eigenvalue"):
        g = predict.gp_inference(k, y)("nngp", k)
    assert np.isfinite(g).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predict.gradient_descent_mse(k, y, diag_reg=1.0, diag_reg_absolute_scale=True)(1.0)


def test_duplicated_training_inputs_fit_their_mean_target_without_nans():
    """Two copies of one input with targets 0 and 3 (a singular kernel): at t = ∞ (eigendecomposition,
    zero modes do not train) both copies predict 1.5, the other points their targets, and the ensemble
    covariances stay finite."""
    x = np.vstack([np.eye(3), np.eye(3)[:1]])
    y = np.array([0.0, 1.0, 2.0, 3.0])
    net = nk.mlp(1, 8, "relu", W_std=1.5, b_std=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the kernel is only PSD: warned about, tested above
        f = predict.gradient_descent_mse(net.kernel(x, get="ntk"), y)(np.inf)
        out = predict.gradient_descent_mse_ensemble(net, x, y)(None, np.array([1.0, np.inf]), compute_cov=True)
    np.testing.assert_allclose(f, [1.5, 1.0, 2.0, 1.5], atol=1e-9)
    for g in out:
        assert np.isfinite(g.mean).all() and np.isfinite(g.covariance).all()


def test_ensemble_matches_monte_carlo_over_wide_random_linearised_networks():
    """Monte Carlo over finite (width-512) random Erf networks from tests/reference.py (plain numpy, own
    back-propagation): each draw's initial outputs f0 and empirical NTK Θ̂ give its linearised flow
    f_t(x) = f0(x) + Θ̂_xΘ̂⁻¹(I − e^{−ηΘ̂t/n})(Y − f0(X)); the sample mean and covariance over 1,600 draws
    agree with the ensemble's "ntk" prediction within 5 standard errors (plus 1% of the scale for the
    O(1/width) finite-width bias)."""
    import reference as ref

    rng = np.random.default_rng(18)
    n, m, outputs, draws = 6, 3, 8, 200
    x = rng.standard_normal((n + m, 3))
    y = rng.standard_normal(n)
    layers = [ref.DenseSpec(512, 1.4, 0.2), ref.ActSpec(ref.phi("Erf")), ref.DenseSpec(outputs, 1.4, 0.2)]
    net = nk.serial(nk.Dense(512, W_std=1.4, b_std=0.2), nk.Erf(), nk.Dense(1, W_std=1.4, b_std=0.2))
    t = 3.0
    samples = []
    for _ in range(draws):
        params = ref.init_params(layers, x.shape[1], rng)
        f0 = ref.forward(params, layers, x)  # (n + m, outputs): independent draws of one output
        _, ntk = ref.empirical_kernels(params, layers, x)
        gain = ntk[n:, :n] @ np.linalg.solve(ntk[:n, :n], np.eye(n) - scipy.linalg.expm(-t * ntk[:n, :n] / n))
        samples.append(f0[n:] + gain @ (y[:, None] - f0[:n]))  # (m, outputs)
    samples = np.concatenate(samples, axis=1).T  # (draws·outputs, m)
    out = predict.gradient_descent_mse_ensemble(net, x[:n], y)(x[n:], t, get="ntk", compute_cov=True)
    scale = np.abs(out.covariance).max()
    se_mean = np.sqrt(np.diag(out.covariance) / len(samples))
    assert np.all(np.abs(samples.mean(0) - out.mean) <= 5 * se_mean + 0.01 * np.sqrt(scale))
    cov = np.cov(samples, rowvar=False)
    se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / len(samples))
    assert np.all(np.abs(cov - out.covariance) <= 5 * se_cov + 0.01 * scale)
