"""Small datasets for the dashboards, every point scaled to input variance ``x·x/d = 1``.

On that sphere every sample has the same variance through every layer, so kernels depend only on the
angle between inputs (and the core's fast path for numerical activations applies)."""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["DATASETS", "IMAGE_DATASETS", "circle", "digit_images", "digits", "load", "load_images", "sin_regression",
           "sphere", "to_sphere"]

DATASETS = ("circle", "sphere", "digits")
IMAGE_DATASETS = ("digits",)  # the datasets that are images too (for the convolutional networks)


def to_sphere(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` rescaled to ``x·x/d = 1`` (zero rows are left at 0)."""
    x = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x, axis=1, keepdims=True) / np.sqrt(x.shape[1])
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def circle(n: int) -> np.ndarray:
    """``n`` equally spaced points on the circle (d = 2): their Gram matrices are circulant."""
    t = 2.0 * np.pi * np.arange(n) / n
    return to_sphere(np.stack([np.cos(t), np.sin(t)], axis=1))


def sphere(n: int, dim: int = 3, seed: int = 0) -> np.ndarray:
    """``n`` points drawn uniformly on the sphere in ``dim`` dimensions."""
    return to_sphere(np.random.default_rng(seed).standard_normal((n, dim)))


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.data.astype(np.float64)
    x = x - x.mean(axis=0)
    order = np.random.default_rng(0).permutation(len(x))
    return x[order], d.target[order].astype(np.int64)


def digits(n: int) -> np.ndarray:
    """``n`` (≤ 1797) of scikit-learn's bundled 8×8 digits (no download): centred, shuffled with a
    fixed seed, on the sphere."""
    x = _digits()[0]
    if not 1 <= n <= len(x):
        raise ValueError(f"n_points: digits has {len(x)} images; ask for 1 to {len(x)}, got {n}")
    return to_sphere(x[:n])


def digit_images(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The same ``n`` digits as :func:`digits` as NHWC images ``(n, 8, 8, 1)`` (each with
    ``x·x/64 = 1``; ``digits(n)`` is ``images.reshape(n, 64)``), and their labels 0–9, int64 ``(n,)``."""
    return digits(n).reshape(n, 8, 8, 1), _digits()[1][:n].copy()


def load_images(name: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The image dataset called ``name`` (one of :data:`IMAGE_DATASETS`): ``n`` NHWC images and their labels."""
    if name == "digits":
        return digit_images(n)
    raise ValueError(f"dataset: {name!r} is not an image dataset; the convolutional networks take one of "
                     f"{IMAGE_DATASETS}")


def load(name: str, n: int, sphere_dim: int = 3) -> np.ndarray:
    """The dataset called ``name`` (one of :data:`DATASETS`) with ``n`` points."""
    if name == "circle":
        return circle(n)
    if name == "sphere":
        return sphere(n, sphere_dim)
    if name == "digits":
        return digits(n)
    raise ValueError(f"dataset: unknown name {name!r}; use one of {DATASETS}")


def sin_regression(n_train: int = 5, n_test: int = 100, noise: float = 0.1,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A 1-D regression task (neural-tangents' cookbook): ``n_train`` inputs drawn uniformly on
    ``[−π, π]`` with targets ``sin(x) + noise·N(0, 1)``, and ``n_test`` equally spaced test inputs on
    ``[−π, π]`` with noiseless targets ``sin(x)``. Returns ``(x_train (n, 1), y_train (n, 1),
    x_test (m, 1), y_test (m, 1))``; not on the sphere (the input's size matters in 1-D)."""
    if n_train < 1 or n_test < 1:
        raise ValueError(f"n_train, n_test: need at least one point each, got {n_train}, {n_test}")
    rng = np.random.default_rng(seed)
    x_train = np.sort(rng.uniform(-np.pi, np.pi, n_train))[:, None]
    y_train = np.sin(x_train) + noise * rng.standard_normal(x_train.shape)
    x_test = np.linspace(-np.pi, np.pi, n_test)[:, None]
    return x_train, y_train, x_test, np.sin(x_test)
