"""Kernel regression and training dynamics with the NTK and NNGP on real data bundled with scikit-learn
(digits, breast cancer, wine; no downloads): the infinitely wide networks must beat (digits) or match
(breast cancer, wine) linear baselines fitted on the same standardised features and the same split.
"""

from __future__ import annotations

import ntkrs as nk
import numpy as np
import pytest
from ntkrs import predict
from ntkrs.sklearn import NTK, NTKRegressor
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.linear_model import LogisticRegression, RidgeClassifier
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

NET = nk.mlp(3, 512, "relu", W_std=1.5, b_std=0.05)


def split(load):
    """Stratified 70/30 split (fixed seed), features standardised on the training part."""
    x, y = load(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    scaler = StandardScaler().fit(xtr)
    return scaler.transform(xtr), scaler.transform(xte), ytr, yte


def one_hot(y: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Centred one-hot targets (1 − 1/C on the class, −1/C elsewhere)."""
    return (y[:, None] == classes[None, :]) - 1.0 / len(classes)


@pytest.fixture(scope="module")
def digits():
    xtr, xte, ytr, yte = split(load_digits)
    return xtr, xte, ytr, yte, NET.kernel(xtr), NET.kernel(xte, xtr)


@pytest.mark.parametrize("get", ["ntk", "nngp"])
def test_digits_kernel_regression_beats_a_linear_classifier(digits, get):
    """10-class digits (1,257 training images): NTK / NNGP kernel regression on one-hot targets
    (t = ∞) reaches ≥ 98% test accuracy, which RidgeClassifier on the same features does not."""
    xtr, xte, ytr, yte, ktr, kte = digits
    classes = np.unique(ytr)
    mean = predict.gp_inference(getattr(ktr, get), one_hot(ytr, classes), diag_reg=1e-4)("nngp", getattr(kte, get))
    acc = np.mean(classes[mean.argmax(1)] == yte)
    ridge = RidgeClassifier().fit(xtr, ytr).score(xte, yte)
    assert acc >= 0.98 > ridge


def test_digits_training_dynamics_fit_the_training_set_and_converge_to_kernel_regression(digits):
    """Gradient flow with the NTK on digits at the largest stable learning rate: the training loss never
    rises (to rounding) over a log grid of times and falls by 20 orders of magnitude, the training set
    ends classified perfectly, and late-time test predictions equal t = ∞."""
    xtr, xte, ytr, yte, ktr, kte = digits
    classes = np.unique(ytr)
    y = one_hot(ytr, classes)
    lr = predict.max_learning_rate(ktr.ntk, y.size)
    fn = predict.gradient_descent_mse(ktr.ntk, y, learning_rate=lr, diag_reg=1e-4)
    ts = np.concatenate([[0.0], np.logspace(0, 7, 15)])
    ftr, fte = fn(ts, 0.0, 0.0, kte.ntk)
    loss = 0.5 * np.mean((ftr - y) ** 2, axis=(1, 2))
    assert np.all(np.diff(loss) <= 1e-15 * loss[0])
    assert np.all(np.diff(loss[:8]) < 0) and loss[-1] < 1e-20 * loss[0]
    assert np.mean(classes[ftr[-1].argmax(1)] == ytr) == 1.0
    _, inf = fn(None, 0.0, 0.0, kte.ntk)
    np.testing.assert_allclose(fte[-1], inf, rtol=0, atol=1e-6 * np.abs(inf).max())


def test_breast_cancer_estimator_and_svc_match_logistic_regression():
    """Binary breast-cancer diagnosis: NTKRegressor on ±1 labels and an SVC on the precomputed NTK are
    within 2 points of logistic regression and above 94% test accuracy."""
    xtr, xte, ytr, yte = split(load_breast_cancer)
    reg = NTKRegressor(net=NET).fit(xtr, 2.0 * ytr - 1)
    acc_reg = np.mean((reg.predict(xte) > 0) == yte)
    kern = NTK(net=NET, W_std=1.5, b_std=0.05)
    svc = SVC(kernel="precomputed", C=1.0).fit(kern(xtr), ytr)
    acc_svc = svc.score(kern(xte, xtr), yte)
    logistic = LogisticRegression(max_iter=5000).fit(xtr, ytr).score(xte, yte)
    for acc in (acc_reg, acc_svc):
        assert acc >= max(0.94, logistic - 0.02)


@pytest.mark.parametrize("get", ["ntk", "nngp"])
def test_wine_multi_output_regressor_classifies_the_three_cultivars(get):
    """Wine (3 classes, 124 training samples): NTKRegressor on one-hot targets (multi-output), trained
    to convergence, classifies ≥ 95% of the test set; the finite-time ensemble mean does too once t is
    large, and at t = 0 it predicts 0 (the ensemble mean at initialisation)."""
    xtr, xte, ytr, yte = split(load_wine)
    classes = np.unique(ytr)
    y = one_hot(ytr, classes)
    for t in (None, 1e6):
        pred = NTKRegressor(net=NET, t=t, get=get).fit(xtr, y).predict(xte)
        assert np.mean(classes[pred.argmax(1)] == yte) >= 0.95
    np.testing.assert_array_equal(NTKRegressor(net=NET, t=0.0, get=get).fit(xtr, y).predict(xte), 0.0)
