"""Kernel spectra and learning curves of kernel regression.

* :func:`mercer`: the Mercer eigenvalues ``λ_k`` of a network's NNGP or NTK for inputs uniform on the
  sphere ``x·x/dim = 1``, by degree ``k`` of the spherical harmonics (Funk–Hecke), and
  :func:`multiplicity`, the number ``N(dim, k)`` of harmonics of degree ``k``;
* :func:`mercer_spectrum`: the same as a :class:`Spectrum` (eigenvalues, multiplicities, ``k(1)``, a target's
  power per degree, e.g. from samples by :func:`sphere_power`), the input of :func:`learning_curve`;
* :func:`empirical_spectrum`: the eigenvalues of ``K/N`` for any data (all of them, or the top ones by
  randomized subspace iteration) and the target's power along each eigenvector;
* :func:`learning_curve`: the generalisation error of kernel ridge regression against the number of
  training points predicted from a spectrum and the target's power per mode (Bordelon, Canatar &
  Pehlevan 2020; Canatar, Bordelon & Pehlevan 2021; Simon et al. 2023), with the error of each mode;
* :func:`kare`: Jacot et al.'s (2020) kernel alignment risk estimator, from training data only;
* :func:`measure_learning_curve`: kernel regression with a network's kernel on uniform sphere data
  (:func:`sphere_points`) and a random teacher of given power per degree (:func:`sphere_teacher`), averaged
  over draws (the experiment the theory predicts).

Conventions (see ``docs/spectrum.md`` for the derivations):

* Sphere: inputs ``x ∈ R^dim`` with ``x·x/dim = 1`` (ntkrs' input covariance ``x·x'/dim`` is then the
  cosine ``t``), drawn from the uniform probability measure ``σ``. A dot-product kernel is
  ``k(t) = Σ_k λ_k · N(dim, k) · P_k(t)`` with ``P_k`` the Gegenbauer polynomial of dimension ``dim``
  normalised to ``P_k(1) = 1`` (Legendre for ``dim = 3``, Chebyshev ``T_k`` for ``dim = 2``); ``λ_k`` is
  the eigenvalue of the integral operator ``f ↦ ∫ k(x·x'/dim) f(x') dσ(x')`` on the ``N(dim, k)``
  harmonics of degree ``k``, so ``Σ_k λ_k N(dim, k) = k(1) = E k(x, x)``.
* Kernel ridge regression on ``P`` points: ``f̂(x) = k(x, X) (K + ridge·I)⁻¹ y`` with the raw Gram
  ``K`` (not ``K/P``): scikit-learn's ``KernelRidge(alpha=ridge)``. Labels ``y = f*(x) + ε``,
  ``ε ~ N(0, noise)`` (``noise`` is the variance σ²). The generalisation error is
  ``E_g = E_x (f̂(x) − f*(x))²`` against the noiseless target, averaged over training sets.
* The power of a target in a group of modes is ``Σ_ρ v_ρ²`` over the group, where ``f* = Σ_ρ v_ρ φ_ρ``
  in an orthonormal eigenbasis of ``L²(σ)``: the total power is ``E_x f*(x)²``.
"""

from __future__ import annotations

import contextlib
import functools
import math
import numbers
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
from scipy import linalg as sla
from scipy import special

from .layers import REGISTRY, Activation
from .network import Network, _progress, as_matrix

__all__ = [
    "LearningCurve", "MeasuredCurve", "Spectrum", "empirical_spectrum", "gegenbauer", "kare", "learning_curve",
    "measure_learning_curve", "mercer", "mercer_spectrum", "multiplicity", "sphere_points", "sphere_power",
    "sphere_teacher",
]

ArrayLike = Any


# --------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------


def _int_arg(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__} {value!r}")
    value = int(value)
    if value < low:
        raise ValueError(f"{name}: must be ≥ {low}, got {value}")
    return value


def _nonneg(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number ≥ 0, got {type(value).__name__} {value!r}")
    value = float(value)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name}: must be a finite number ≥ 0, got {value}")
    return value


def _get(get: Any) -> str:
    if get not in ("nngp", "ntk"):
        raise ValueError(f"get: expected 'nngp' or 'ntk', got {get!r}")
    return get


def _network(net: Any) -> Network:
    if not isinstance(net, Network):
        raise TypeError(f"net: expected an ntkrs network (nk.serial(...) or nk.mlp(...)), got {type(net).__name__}")
    return net


# --------------------------------------------------------------------------------------------
# Spherical harmonics: multiplicities and Gegenbauer polynomials
# --------------------------------------------------------------------------------------------


def _log_multiplicity(dim: int, k: np.ndarray) -> np.ndarray:
    """``log N(dim, k)`` for integer arrays ``k ≥ 0`` (``dim ≥ 2``), without overflow."""
    k = np.asarray(k, dtype=np.float64)
    out = np.zeros_like(k)
    pos = k > 0
    kk = k[pos]
    if dim == 2:
        out[pos] = math.log(2.0)
    else:
        # N = (2k + d − 2)/k · C(k + d − 3, k − 1) = (2k + d − 2) Γ(k + d − 2) / (Γ(k + 1) Γ(d − 1)).
        out[pos] = (np.log(2 * kk + dim - 2) + special.gammaln(kk + dim - 2) - special.gammaln(kk + 1)
                    - special.gammaln(dim - 1))
    return out


def multiplicity(dim: int, k: ArrayLike) -> Any:
    """The number ``N(dim, k)`` of linearly independent spherical harmonics of degree ``k`` on the
    sphere ``S^{dim−1} ⊂ R^dim``: ``N(dim, 0) = 1``, ``N(dim, k) = (2k + dim − 2)/k · C(k + dim − 3, k − 1)``
    (``N(2, k) = 2``, ``N(3, k) = 2k + 1``).

    Args:
        dim: the ambient dimension (≥ 2).
        k: a degree (≥ 0) or an array of degrees.

    Returns:
        A Python ``int`` (exact) for an integer ``k``; a float64 array of the shape of ``k`` otherwise
        (``inf`` where ``N`` exceeds the float range, about ``dim = 10⁴``, ``k = 100``).
    """
    dim = _int_arg("dim", dim, 2)
    if isinstance(k, numbers.Integral) and not isinstance(k, bool):
        k = int(k)
        if k < 0:
            raise ValueError(f"k: degrees are ≥ 0, got {k}")
        if k == 0:
            return 1
        if dim == 2:
            return 2
        return (2 * k + dim - 2) * math.comb(k + dim - 3, k - 1) // k
    a = np.asarray(k)
    if a.dtype.kind not in "iu" and not (a.dtype.kind == "f" and np.all(a == np.round(a))):
        raise TypeError(f"k: expected integer degrees, got {a.dtype} values")
    if np.any(a < 0):
        raise ValueError("k: degrees are ≥ 0")
    logs = _log_multiplicity(dim, a)
    with np.errstate(over="ignore"):
        out = np.exp(logs)
    # Exact (rounded once) where the count fits comfortably in a float: exp(log N) is off by a few ulps.
    small = logs < 600
    for k in np.unique(a[small]):
        out[a == k] = float(multiplicity(dim, int(k)))
    return out


def gegenbauer(dim: int, degrees: int, t: ArrayLike) -> np.ndarray:
    """The Gegenbauer polynomials of dimension ``dim`` normalised to ``P_k(1) = 1``, ``k < degrees``, at ``t``.

    They are orthogonal on ``[−1, 1]`` with the weight ``(1 − t²)^((dim−3)/2)`` (Legendre for ``dim = 3``,
    Chebyshev ``T_k`` for ``dim = 2``) and computed by the stable three-term recurrence
    ``(k + dim − 2) P_{k+1}(t) = (2k + dim − 2) t P_k(t) − k P_{k−1}(t)``; ``|P_k(t)| ≤ 1`` on ``[−1, 1]``.

    Returns:
        An array of shape ``(degrees,) + t.shape``.
    """
    dim = _int_arg("dim", dim, 2)
    degrees = _int_arg("degrees", degrees, 1)
    t = np.asarray(t, dtype=np.float64)
    out = np.empty((degrees,) + t.shape)
    out[0] = 1.0
    if degrees > 1:
        out[1] = t
    for k in range(1, degrees - 1):
        out[k + 1] = ((2 * k + dim - 2) * t * out[k] - k * out[k - 1]) / (k + dim - 2)
    return out


# --------------------------------------------------------------------------------------------
# The kernel as a function of the cosine, and the Funk–Hecke projection
# --------------------------------------------------------------------------------------------


def _dot_product_kernel(net: Network, t: ArrayLike, get: str) -> np.ndarray:
    """``k(t)``: the kernel ``get`` of ``net`` between two inputs with ``x·x/d = x'·x'/d = 1`` and
    ``x·x'/d = t`` (any ``d``: the kernel of a fully-connected network depends on these three numbers only).

    One call of ``net.kernel`` on the 2-D points ``(√2, 0)`` and ``√2 (t, √(1 − t²))``. This is the only
    place the spectrum module evaluates kernels on the sphere (swap in a direct kernel map here)."""
    t = np.asarray(t, dtype=np.float64)
    flat = np.clip(t.reshape(-1), -1.0, 1.0)
    x = np.array([[math.sqrt(2.0), 0.0]])
    y = math.sqrt(2.0) * np.stack([flat, np.sqrt(np.maximum(1.0 - flat * flat, 0.0))], axis=1)
    return np.asarray(net.kernel(x, y, get=get))[0].reshape(t.shape)


def _kernel_at_one(net: Network, get: str) -> float:
    """``k(1) = k(x, x)`` on the sphere, through the diagonal path (no angle is formed, so it is exact)."""
    return float(net.kernel(np.array([[1.0, 1.0]]), get=get, diagonal=True)[0])


def _log_c(dim: int) -> float:
    """``log c_dim`` with ``c_dim = Γ(dim/2)/(√π Γ((dim−1)/2))``: the density of ``t = x·e/|x|`` for ``x``
    uniform on ``S^{dim−1}`` is ``c_dim (1 − t²)^((dim−3)/2)``."""
    return float(special.gammaln(dim / 2) - 0.5 * math.log(math.pi) - special.gammaln((dim - 1) / 2))


@functools.lru_cache(maxsize=64)
def _nodes(dim: int, degrees: int, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Angles ``θ_i`` and weights ``w_i`` with ``Σ_i w_i g(cos θ_i) ≈ E_σ g(t)`` for the density of
    ``t = cos θ`` on ``S^{dim−1}``: Gauss–Legendre in ``θ`` on ``[0, π]`` with the density's factor
    ``c_dim sin^(dim−2) θ`` folded into the weights.

    Why ``θ``: the kernels of ReLU-like networks have ``(1 − t)^{1/2}`` branch points at ``t = ±1``
    (``arccos t`` appears in the arc-cosine kernels) but are analytic functions of ``θ = arccos t`` on
    the closed interval, so the rule converges exponentially for them as for smooth kernels, and it
    never evaluates the kernel at ``t = ±1`` itself. For large ``dim`` the factor ``sin^(dim−2) θ``
    confines the mass to ``|θ − π/2| ≲ 1/√dim``: the rule then covers only the angles where it exceeds
    1e-300 of its peak, with enough nodes to resolve its width.
    """
    if dim > 3:
        # (dim − 2) log sin θ ≥ −700 ⇔ |θ − π/2| ≤ a with cos a = sin(π/2 − a) = e^(−700/(dim − 2)).
        a = math.acos(min(1.0, math.exp(-700.0 / (dim - 2))))
        a = min(a, math.pi / 2)
    else:
        a = math.pi / 2
    lo, hi = math.pi / 2 - a, math.pi / 2 + a
    if n is None:
        n = max(96, 2 * degrees + 64, int(math.ceil(6 * (hi - lo) * math.sqrt(dim))))
    z, w = special.roots_legendre(n)
    theta = lo + (hi - lo) * (z + 1) / 2
    s = np.sin(theta)
    with np.errstate(divide="ignore"):
        logw = np.log(w * (hi - lo) / 2) + (dim - 2) * np.log(s) + _log_c(dim)
    theta, weights = theta, np.exp(logw)
    theta.setflags(write=False)
    weights.setflags(write=False)
    return theta, weights


def _project(values: np.ndarray, theta: np.ndarray, weights: np.ndarray, dim: int,
             degrees: int) -> tuple[np.ndarray, np.ndarray]:
    """Funk–Hecke coefficients ``λ_k = E_σ[k(t) P_k(t)]`` of the sampled kernel and their rounding floor."""
    p = gegenbauer(dim, degrees, np.cos(theta))  # (degrees, n)
    f = values * weights
    lam = p @ f
    # Rounding of the sum, of the kernel values and of the rule's nodes and weights (whose errors,
    # about n·ε, dominate: measured on kernels with known zero coefficients).
    floor = (64 + 2 * theta.size) * np.finfo(np.float64).eps * (np.abs(p) @ np.abs(f)) + 1e-300
    return lam, floor


def mercer(net: Network, dim: int, degrees: int, get: str = "ntk", *, nodes: int | None = None,
           error: bool = False) -> Any:
    """Mercer eigenvalues ``λ_k``, ``k = 0 … degrees−1``, of the kernel ``get`` of ``net`` for inputs
    uniform on the sphere ``x·x/dim = 1`` in ``R^dim``, with respect to the uniform probability measure.

    The kernel is a function of the cosine ``t = x·x'/dim`` and
    ``k(t) = Σ_k λ_k · multiplicity(dim, k) · P_k(t)`` with ``P_k`` the Gegenbauer polynomial of
    dimension ``dim``, ``P_k(1) = 1`` (:func:`gegenbauer`). By the Funk–Hecke formula
    ``λ_k = c_dim ∫₋₁¹ k(t) P_k(t) (1 − t²)^((dim−3)/2) dt`` with ``c_dim = Γ(dim/2)/(√π Γ((dim−1)/2))``,
    computed by Gauss–Legendre quadrature in ``θ = arccos t`` (exponentially convergent for smooth and
    for ReLU-like kernels, whose ``√(1 − t)`` kinks at ``t = ±1`` are analytic in ``θ``), with one call
    of ``net.kernel`` on all the nodes and the three-term recurrence for ``P_k``.

    Accuracy: the quadrature error is below the rounding floor (``error=True`` returns it); that
    floor is about ``1e-13·k(1)/√N(dim, k)`` (``(64 + 2·nodes)·ε`` times ``E|k(t) P_k(t)|``), so in high dimension
    the eigenvalues of high degree, which are far smaller, are lost to cancellation (for ``dim = 784``
    beyond about degree 8; they matter only for ``P ≳ dim^8`` training points). Numerical activations
    (``Tanh``, ``Silu``, …) are accurate to their kernel's accuracy (see the README), about 1e-8 relative.

    Args:
        net: a network (``nk.serial`` / ``nk.mlp``).
        dim: the input dimension (≥ 2; 2 is the circle, where ``P_k = T_k`` and ``λ_k`` are Fourier coefficients).
        degrees: how many degrees (≥ 1).
        get: ``"ntk"`` or ``"nngp"``.
        nodes: quadrature nodes (default ``max(96, 2·degrees + 64, ⌈6·width·√dim⌉)``, ``width`` the angular
            range that carries the measure).
        error: also return the rounding floor of each ``λ_k``.

    Returns:
        ``λ`` of shape ``(degrees,)``; or ``(λ, floor)`` with ``error=True``.
    """
    net = _network(net)
    dim = _int_arg("dim", dim, 2)
    degrees = _int_arg("degrees", degrees, 1)
    get = _get(get)
    if nodes is not None:
        nodes = _int_arg("nodes", nodes, 8)
    theta, weights = _nodes(dim, degrees, nodes)
    values = _dot_product_kernel(net, np.cos(theta), get)
    lam, floor = _project(values, theta, weights, dim, degrees)
    return (lam, floor) if error else lam


# --------------------------------------------------------------------------------------------
# Spectra with a target: the input of learning_curve
# --------------------------------------------------------------------------------------------


class Spectrum(NamedTuple):
    """A kernel's eigenvalues in groups of equal eigenvalue, with the target's power per group.

    Attributes:
        eigenvalues: ``(K,)`` eigenvalue of each group (w.r.t. the data's probability measure).
        multiplicity: ``(K,)`` number of modes in each group (float; 1 for an empirical spectrum).
        power: ``(K,)`` the target's power ``Σ v_ρ²`` in each group, or ``None``.
        trace: ``E_x k(x, x) = Σ`` over all modes, also those not listed (their eigenvalue mass acts as
            extra ridge in :func:`learning_curve`).
        tail_power: the target's power outside the listed groups.
        vectors: for an empirical spectrum, the ``(N, K)`` orthonormal eigenvectors of the Gram; else ``None``.
    """

    eigenvalues: np.ndarray
    multiplicity: np.ndarray
    power: np.ndarray | None
    trace: float
    tail_power: float = 0.0
    vectors: np.ndarray | None = None


def mercer_spectrum(net: Network, dim: int, degrees: int, get: str = "ntk", power: ArrayLike | None = None,
                    *, nodes: int | None = None) -> Spectrum:
    """:func:`mercer` as a :class:`Spectrum` for :func:`learning_curve`: groups are degrees, with
    ``multiplicity(dim, k)`` modes each, ``trace = k(1)``; eigenvalues within ten times their rounding
    floor of 0 are set to 0 (a negative one beyond that raises a ``ValueError``).

    Args:
        power: the target's power per degree ``(≤ degrees,)`` (e.g. from :func:`sphere_power`), padded
            with zeros; ``None`` for none.
    """
    lam, floor = mercer(net, dim, degrees, get, nodes=nodes, error=True)
    return _sphere_spectrum(lam, floor, dim, _kernel_at_one(net, get), power)


def _sphere_spectrum(lam: np.ndarray, floor: np.ndarray, dim: int, trace: float,
                     power: ArrayLike | None) -> Spectrum:
    """The :class:`Spectrum` of projected eigenvalues ``lam`` with their rounding ``floor``."""
    # Network kernels are positive definite (Schoenberg: λ_k ≥ 0); what is left within a few floors of 0
    # (the rule's own rounding grows with the number of nodes) is 0.
    lam = np.where(lam <= 10 * floor, np.where(lam < -10 * floor, lam, 0.0), lam)
    if np.any(lam < 0):
        k = int(np.argmin(lam))
        raise ValueError(f"net: the kernel has a negative Mercer eigenvalue λ_{k} = {lam[k]:.3g} beyond rounding "
                         f"({floor[k]:.2g}); it is not positive definite on the sphere")
    mult = multiplicity(dim, np.arange(lam.size))
    p = None if power is None else _power_array("power", power, lam.size)
    return Spectrum(lam, mult, p, trace, 0.0, None)


def _power_array(name: str, power: ArrayLike, size: int) -> np.ndarray:
    p = np.asarray(power, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of powers per group, got shape {p.shape}")
    if p.size > size:
        raise ValueError(f"{name}: {p.size} values for {size} groups; compute more degrees or trim the target")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError(f"{name}: powers must be finite and ≥ 0")
    return np.concatenate([p, np.zeros(size - p.size)])


def sphere_points(n: int, dim: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
    """``n`` points drawn uniformly on the sphere ``x·x/dim = 1`` in ``R^dim``, shape ``(n, dim)``."""
    rng = np.random.default_rng(rng)
    g = rng.standard_normal((n, dim))
    return g * (math.sqrt(dim) / np.linalg.norm(g, axis=1, keepdims=True))


def sphere_power(x: ArrayLike, y: ArrayLike, degrees: int) -> np.ndarray:
    """The power per degree ``‖Proj_k f‖² = E_σ[(Proj_k f)²]`` of a function ``f`` on the sphere, estimated
    from samples ``y_i = f(x_i)`` (plus independent zero-mean noise, which does not bias it) at points
    ``x_i`` drawn uniformly on the sphere.

    Uses the unbiased U-statistic ``N(dim, k)/(M(M−1)) Σ_{i≠j} y_i y_j P_k(x̂_i·x̂_j)`` (since
    ``E_x'[f(x') P_k(x·x')] = Proj_k f(x)/N(dim, k)``). It can be slightly negative for degrees with
    (almost) no power; its standard error falls like ``1/M``.

    Args:
        x: ``(M, dim)`` points (only their directions are used).
        y: ``(M,)`` values, or ``(M, O)``: the power is then averaged over the ``O`` outputs.
        degrees: how many degrees.

    Returns:
        ``(degrees,)`` powers.
    """
    x = as_matrix(x, "x", np.dtype(np.float64))
    m, dim = x.shape
    if dim < 2:
        raise ValueError("x: points on a sphere need dim ≥ 2 features")
    if m < 2:
        raise ValueError("x: need at least 2 points")
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[0] != m:
        raise ValueError(f"y: expected shape ({m},) or ({m}, O), got {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("y: contains NaN or infinite values")
    degrees = _int_arg("degrees", degrees, 1)
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    t = np.clip(u @ u.T, -1.0, 1.0)
    mult = multiplicity(dim, np.arange(degrees))
    diag = np.sum(y * y)
    out = np.empty(degrees)
    prev, cur = np.ones_like(t), t.copy()
    for k in range(degrees):
        pk = prev if k == 0 else cur
        quad = float(np.sum(y * (pk @ y)))
        out[k] = mult[k] * (quad - diag) / (m * (m - 1) * y.shape[1])
        if k >= 1:
            nxt = ((2 * k + dim - 2) * t * cur - k * prev) / (k + dim - 2)
            prev, cur = cur, nxt
    return out


# --------------------------------------------------------------------------------------------
# Empirical spectra
# --------------------------------------------------------------------------------------------


def _top_eigh(K: Any, top: int, oversample: int, iterations: int, rng: np.random.Generator,
              block_rows: int, progress: Callable[[int, int], Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top eigenpairs of a symmetric PSD ``K`` by randomized subspace iteration (Halko, Martinsson &
    Tropp 2011, Alg. 4.4 with Rayleigh–Ritz), reading ``K`` in row blocks (works on memmaps)."""
    n = K.shape[0]
    r = min(n, top + oversample)

    def product(q: np.ndarray) -> np.ndarray:
        out = np.empty((n, q.shape[1]))
        for i in range(0, n, block_rows):
            out[i:i + block_rows] = np.asarray(K[i:i + block_rows], dtype=np.float64) @ q
        return out

    q, _ = np.linalg.qr(rng.standard_normal((n, r)))
    for i in range(iterations):
        q, _ = np.linalg.qr(product(q))
        if progress is not None:
            progress(i + 1, iterations + 1)
    kq = product(q)
    if progress is not None:
        progress(iterations + 1, iterations + 1)
    b = q.T @ kq
    vals, vecs = np.linalg.eigh((b + b.T) / 2)
    order = np.argsort(vals)[::-1][:top]
    return vals[order], q @ vecs[:, order]


def empirical_spectrum(K: ArrayLike, y: ArrayLike | None = None, *, top: int | None = None, oversample: int = 20,
                       iterations: int = 8, seed: int = 0,
                       progress: bool | Callable[[int, int], Any] = False) -> Spectrum:
    """The spectrum of a kernel on a finite data set: eigenvalues of ``K/N`` (largest first), which are the
    Mercer eigenvalues with respect to the uniform measure on the ``N`` points, and the target's power
    along each eigenvector.

    With eigenvectors ``u_i`` of ``K`` (orthonormal in ``R^N``), the eigenfunctions orthonormal in
    ``L²`` of the empirical measure are ``φ_i(x_μ) = √N u_{iμ}``, so a target ``y`` has coefficients
    ``v_i = u_i·y/√N`` and power ``v_i² = (u_i·y)²/N`` (summing to ``mean(y²)``).

    Args:
        K: the ``(N, N)`` Gram matrix (symmetric positive semi-definite), e.g. ``net.kernel(x, get="ntk")``;
            a memmap works too with ``top`` (it is read in row blocks).
        y: the target on the same points, ``(N,)`` or ``(N, O)`` (powers averaged over outputs), or ``None``.
        top: ``None`` for all ``N`` eigenvalues (``scipy.linalg.eigh``, ``O(N³)``); an integer for the
            ``top`` largest by randomized subspace iteration (``O(N²·top)`` per iteration). The
            unlisted modes' eigenvalue mass ``trace − Σ`` and target power ``tail_power`` are kept.
        oversample, iterations, seed: of the randomized method (extra vectors, power iterations, seed).
        progress: with ``top``, ``True`` for a tqdm bar over the passes through ``K`` (or ``f(done, total)``).

    Returns:
        A :class:`Spectrum` with ``multiplicity`` all ones, ``trace = tr(K)/N`` and ``vectors`` ``(N, K)``.
    """
    if not hasattr(K, "shape") or len(K.shape) != 2:
        K = np.asarray(K, dtype=np.float64)
    if len(K.shape) != 2 or K.shape[0] != K.shape[1] or K.shape[0] < 1:
        raise ValueError(f"K: expected a square (N, N) Gram matrix, got shape {K.shape}")
    n = K.shape[0]
    yy = None
    if y is not None:
        yy = np.asarray(y, dtype=np.float64)
        if yy.ndim == 1:
            yy = yy[:, None]
        if yy.ndim != 2 or yy.shape[0] != n:
            raise ValueError(f"y: expected shape ({n},) or ({n}, O), got {np.shape(y)}")
        if not np.all(np.isfinite(yy)):
            raise ValueError("y: contains NaN or infinite values")
    diag = np.array([float(K[i, i]) for i in range(n)]) if not isinstance(K, np.ndarray) else np.diagonal(K)
    trace = float(np.sum(diag)) / n
    if top is None:
        a = np.asarray(K, dtype=np.float64)
        if not np.all(np.isfinite(a)):
            raise ValueError("K: contains NaN or infinite values")
        if not np.allclose(a, a.T, rtol=1e-10, atol=1e-12 * float(np.max(np.abs(a)) + 1e-300)):
            raise ValueError("K: is not symmetric; pass a Gram matrix k(x_i, x_j)")
        with _single_threaded_blas() if n < 4000 else contextlib.nullcontext():
            vals, vecs = sla.eigh(a, check_finite=False, driver="evd")
        vals, vecs = vals[::-1], vecs[:, ::-1]
    else:
        top = _int_arg("top", top, 1)
        if top > n:
            raise ValueError(f"top: at most N = {n} eigenvalues, got {top}")
        block = max(1, int(2**25 // max(n, 1)))
        callback, bar = _progress(progress, "top eigenvectors")
        try:
            with _single_threaded_blas() if n < 4000 else contextlib.nullcontext():
                vals, vecs = _top_eigh(K, top, _int_arg("oversample", oversample, 0),
                                       _int_arg("iterations", iterations, 0), np.random.default_rng(seed), block,
                                       callback)
        finally:
            if bar is not None:
                bar.close()
    eig = vals / n
    scale = max(abs(float(eig[0])), 1e-300)
    if eig[-1] < -1e-8 * scale:
        raise ValueError(f"K: has a negative eigenvalue {vals[-1]:.3g} (largest {vals[0]:.3g}); "
                         "a kernel Gram matrix is positive semi-definite")
    eig = np.maximum(eig, 0.0)
    power, tail = None, 0.0
    if yy is not None:
        proj = vecs.T @ yy  # (K, O)
        power = np.sum(proj * proj, axis=1) / (n * yy.shape[1])
        tail = max(float(np.sum(yy * yy)) / (n * yy.shape[1]) - float(np.sum(power)), 0.0)
    return Spectrum(eig, np.ones_like(eig), power, trace, tail, vecs)


# --------------------------------------------------------------------------------------------
# Learning curves
# --------------------------------------------------------------------------------------------


class LearningCurve(NamedTuple):
    """Predicted learning curve of kernel ridge regression (see :func:`learning_curve`).

    Attributes (``P`` training-set sizes, ``K`` groups of modes):
        n: ``(P,)`` the training-set sizes.
        error: ``(P,)`` generalisation error ``E_g`` against the noiseless target.
        mode_errors: ``(P, K)`` expected squared error of the target's component in each group
            (their sum plus ``tail_error`` is ``error``).
        tail_error: ``(P,)`` error of the target's power outside the listed groups.
        learnability: ``(P, K)`` ``L = η/(η + κ/P)``: the fraction of each mode the estimator learns on average.
        kappa: ``(P,)`` the self-consistent effective regularisation ``κ``.
        gamma: ``(P,)`` ``γ = Σ_ρ P η_ρ²/(P η_ρ + κ)²``; ``1/(1 − γ)`` amplifies the error (overfitting).
    """

    n: np.ndarray
    error: np.ndarray
    mode_errors: np.ndarray
    tail_error: np.ndarray
    learnability: np.ndarray
    kappa: np.ndarray
    gamma: np.ndarray


def _solve_kappa(p: np.ndarray, eta: np.ndarray, mult: np.ndarray, reg: float) -> np.ndarray:
    """``κ(P)`` solving ``1 = reg/κ + Σ_ρ m_ρ η_ρ/(P η_ρ + κ)`` (``κ = 0`` when ``reg = 0`` and ``P ≥`` the
    number of modes with ``η > 0``). The left side minus the right is increasing in ``κ``: bisection in
    ``log κ`` then Newton steps."""
    p = p[:, None]
    total = float(np.sum(mult * eta))
    rank = float(np.sum(mult[eta > 0]))
    kappa = np.zeros(p.shape[0])
    need = (reg > 0) | (p[:, 0] < rank)
    if not np.any(need):
        return kappa
    pp = p[need]

    def g(k: np.ndarray) -> np.ndarray:
        return 1.0 - reg / k - np.sum(mult * eta / (pp * eta + k), axis=1, keepdims=True)

    hi = np.full(pp.shape, reg + total + 1e-300)  # g(hi) ≥ 0
    lo = hi * 1e-300
    lo_val = g(lo)
    # Far below every κ of interest g(lo) < 0 unless the root is that small; move lo down if needed.
    lo = np.where(lo_val >= 0, lo * 1e-8, lo)
    for _ in range(64):
        mid = np.sqrt(lo * hi)
        neg = g(mid) < 0
        lo, hi = np.where(neg, mid, lo), np.where(neg, hi, mid)
    k = np.sqrt(lo * hi)
    for _ in range(3):  # Newton on g(κ) = 0: g' = reg/κ² + Σ m η/(Pη + κ)²
        dg = reg / k**2 + np.sum(mult * eta / (pp * eta + k) ** 2, axis=1, keepdims=True)
        step = g(k) / dg
        k = np.where((k - step > lo) & (k - step < hi), k - step, k)
    kappa[need] = k[:, 0]
    return kappa


def learning_curve(spectrum: Spectrum | ArrayLike, n: ArrayLike, power: ArrayLike | None = None, *,
                   multiplicity: ArrayLike | None = None, ridge: float = 0.0, noise: float = 0.0,
                   trace: float | None = None, tail_power: float | None = None) -> LearningCurve:
    """Predicted generalisation error of kernel ridge regression against the number of training points.

    The self-consistent theory of Bordelon, Canatar & Pehlevan (2020) and Canatar, Bordelon & Pehlevan
    (2021) (the same equations as Simon et al.'s eigenlearning, 2023, and Jacot et al., 2020). For modes
    ``ρ`` with eigenvalues ``η_ρ`` (``m_ρ`` modes per group), target powers ``v_ρ²``, ridge ``λ`` and
    label-noise variance ``σ²``, at ``P`` training points::

        κ = λ + Σ_ρ κ η_ρ / (P η_ρ + κ)               (solved for κ ≥ 0)
        L_ρ = P η_ρ / (P η_ρ + κ),   γ = Σ_ρ P η_ρ² / (P η_ρ + κ)² = Σ_ρ L_ρ² / P,   E₀ = 1/(1 − γ)
        E_g = E₀ · (Σ_ρ (1 − L_ρ)² v_ρ² + γ σ²)
        E_ρ = (1 − L_ρ)² v_ρ² + (L_ρ²/P) · E₀ · (Σ_ρ' (1 − L_ρ')² v_ρ'² + σ²)       (Σ_ρ E_ρ = E_g)

    ``E_ρ`` is the expected squared error of mode ``ρ``'s coefficient: the bias ``(1 − L_ρ)² v_ρ²`` plus its
    variance, ``L_ρ²/P`` times the test risk (Simon et al. 2023, eq. for the covariance of the learned
    coefficients). Putting ``E₀`` on each mode's own bias instead splits the same total differently, but
    that is not the error of each mode; the tests measure the modes and agree with ``E_ρ`` above.

    Modes not listed (a truncated spectrum) are treated as learned not at all: their eigenvalue mass
    ``trace − Σ m η`` is added to the ridge (valid when ``P·η ≪ κ`` for each of them) and their target
    power ``tail_power`` enters ``E_g`` with ``L = 0``.

    Args:
        spectrum: a :class:`Spectrum` (from :func:`mercer_spectrum` or :func:`empirical_spectrum`), or
            the eigenvalues ``(K,)`` of each group.
        n: training-set sizes ``P`` (positive; an int or an array).
        power: the target's power per group ``(K,)``; taken from ``spectrum.power`` if omitted.
        multiplicity: modes per group ``(K,)`` (with plain eigenvalues; default 1 each).
        ridge: ``λ ≥ 0`` in ``(K + λI)⁻¹`` with the raw Gram (scikit-learn's ``KernelRidge(alpha=λ)``).
            ``λ = 0`` is the minimum-norm interpolant. (Jacot et al.'s ridge is ``λ/P``; neural-tangents'
            ``diag_reg`` is ``λ·P/tr K``.)
        noise: variance ``σ²`` of the label noise.
        trace: ``E k(x, x)``, the eigenvalue mass of all modes (default: that of the listed ones).
        tail_power: the target's power outside the listed groups (default 0, or ``spectrum.tail_power``).

    Returns:
        A :class:`LearningCurve`. Where ``γ = 1`` (ridge 0 and ``P`` equal to the number of modes with
        ``η > 0``) the error is infinite.
    """
    if isinstance(spectrum, Spectrum):
        if multiplicity is not None or trace is not None:
            raise ValueError("multiplicity, trace: given by the Spectrum; pass plain eigenvalues to set them")
        eta, mult = np.asarray(spectrum.eigenvalues, float), np.asarray(spectrum.multiplicity, float)
        if power is None:
            power = spectrum.power
        tr = spectrum.trace
        tail = spectrum.tail_power if tail_power is None else tail_power
    else:
        eta = np.asarray(spectrum, dtype=np.float64)
        if eta.ndim != 1:
            raise ValueError(f"spectrum: expected a Spectrum or a 1-D array of eigenvalues, got shape {eta.shape}")
        mult = np.ones_like(eta) if multiplicity is None else np.asarray(multiplicity, dtype=np.float64)
        tr = trace
        tail = 0.0 if tail_power is None else tail_power
    if eta.size == 0:
        raise ValueError("spectrum: no eigenvalues")
    if not np.all(np.isfinite(eta)) or np.any(eta < 0):
        raise ValueError("spectrum: eigenvalues must be finite and ≥ 0 (a kernel is positive semi-definite)")
    if power is None:
        raise ValueError("power: the target's power per group is needed (or a Spectrum with power)")
    v2 = _power_array("power", power, eta.size)
    if mult.shape != eta.shape or np.any(np.isnan(mult)) or np.any(mult < 0):
        raise ValueError(f"multiplicity: expected {eta.shape} counts ≥ 0, got shape {mult.shape}")
    # Groups with neither eigenvalue nor power play no part (their count may even overflow, huge dim).
    used = (eta > 0) | (v2 > 0)
    if not np.all(np.isfinite(mult[used])):
        raise ValueError("multiplicity: infinite counts for groups with a non-zero eigenvalue or power")
    full_size = eta.size
    eta, mult, v2 = eta[used], mult[used], v2[used]
    ridge = _nonneg("ridge", ridge)
    noise = _nonneg("noise", noise)
    tail = _nonneg("tail_power", tail)
    listed = float(np.sum(mult * eta))
    if tr is None:
        extra = 0.0
    else:
        tr = _nonneg("trace", tr)
        if tr < listed * (1 - 1e-8) - 1e-300:
            raise ValueError(f"trace: {tr:.6g} is below the listed modes' eigenvalue mass {listed:.6g}")
        extra = max(tr - listed, 0.0)
    p = np.atleast_1d(np.asarray(n, dtype=np.float64))
    if p.ndim != 1 or not np.all(np.isfinite(p)) or np.any(p <= 0):
        raise ValueError("n: training-set sizes must be positive numbers")
    reg = ridge + extra
    kappa = _solve_kappa(p, eta, mult, reg)
    nonzero = np.nonzero(eta > 0)[0]
    if extra > 0 and nonzero.size:
        last = eta[nonzero[-1]]
        worst = float(np.max(p * last / (p * last + kappa)))
        if worst > 0.2:
            warnings.warn(f"learning_curve: the last listed mode (eigenvalue {last:.3g}) is learned to "
                          f"{worst:.0%} at n = {p.max():.0f}, so the unlisted modes are not negligible; "
                          "list more degrees (or eigenvalues)", RuntimeWarning, stacklevel=2)
    pe = p[:, None] * eta
    with np.errstate(divide="ignore", invalid="ignore"):
        learn = np.where(pe > 0, pe / (pe + kappa[:, None]), 0.0)  # L_ρ
        gamma = np.sum(mult * learn**2, axis=1) / p
        e0 = np.where(gamma < 1, 1.0 / (1.0 - gamma), np.inf)
        bias_modes = (1 - learn) ** 2 * v2  # per group, already the group's total power
        bias = np.sum(bias_modes, axis=1) + tail
        risk = e0 * (bias + noise)  # test risk with a noisy test label
        var_modes = mult * learn**2 / p[:, None] * risk[:, None]
        mode_err = bias_modes + np.where(var_modes > 0, var_modes, 0.0)
        error = e0 * (bias + gamma * noise)
    mode_full = np.zeros((p.size, full_size))
    learn_full = np.zeros((p.size, full_size))
    mode_full[:, used], learn_full[:, used] = mode_err, learn
    return LearningCurve(p, error, mode_full, np.full(p.shape, tail), learn_full, kappa, gamma)


def kare(K: ArrayLike, y: ArrayLike, ridge: float) -> float:
    """Kernel alignment risk estimator (Jacot, Şimşek, Spadaro, Hongler & Gabriel, NeurIPS 2020): an estimate,
    from the training data alone, of the expected test risk ``E (f̂(x) − y(x))²`` of kernel ridge regression,
    *including* the label noise of the test label (subtract ``σ²`` to compare with :func:`learning_curve`'s
    ``error``)::

        KARE = (1/N) yᵀ (K/N + ρ I)⁻² y / ((1/N) tr (K/N + ρ I)⁻¹)²,   ρ = ridge/N
             = N · yᵀ (K + λ I)⁻² y / (tr (K + λ I)⁻¹)²,             λ = ridge

    Args:
        K: ``(N, N)`` training Gram matrix.
        y: ``(N,)`` or ``(N, O)`` training labels (the estimate is averaged over outputs).
        ridge: ``λ ≥ 0`` in ``(K + λI)⁻¹`` (as in :func:`learning_curve`); 0 needs a non-singular ``K``.
    """
    k = np.asarray(K, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] < 1:
        raise ValueError(f"K: expected a square (N, N) Gram matrix, got shape {k.shape}")
    n = k.shape[0]
    yy = np.asarray(y, dtype=np.float64)
    if yy.ndim == 1:
        yy = yy[:, None]
    if yy.ndim != 2 or yy.shape[0] != n:
        raise ValueError(f"y: expected shape ({n},) or ({n}, O), got {np.shape(y)}")
    if not (np.all(np.isfinite(k)) and np.all(np.isfinite(yy))):
        raise ValueError("K, y: contain NaN or infinite values")
    ridge = _nonneg("ridge", ridge)
    a = (k + k.T) / 2
    with _single_threaded_blas() if n < 4000 else contextlib.nullcontext():
        vals = sla.eigvalsh(a, check_finite=False)  # tr (K + λI)⁻¹ and the conditioning
        shifted = vals + ridge
        floor = n * np.finfo(np.float64).eps * max(float(np.max(np.abs(vals))), 1e-300)
        if np.min(shifted) <= floor:
            raise ValueError(f"ridge: K + ridge·I is singular to working precision (smallest eigenvalue "
                             f"{np.min(shifted):.3g}); pass ridge > 0")
        a[np.diag_indices(n)] += ridge
        z = sla.cho_solve(sla.cho_factor(a, lower=True, check_finite=False), yy, check_finite=False)
    num = n * float(np.sum(z * z)) / yy.shape[1]  # N yᵀ(K + λI)⁻²y = N ‖(K + λI)⁻¹y‖²
    return num / float(np.sum(1.0 / shifted)) ** 2


# --------------------------------------------------------------------------------------------
# The experiment: kernel regression on the sphere with a random teacher
# --------------------------------------------------------------------------------------------


def _tabulated(net: Network) -> bool:
    """Whether ``net`` has an activation whose kernel the core integrates numerically (and tabulates)."""
    return any(isinstance(layer, Activation) and REGISTRY[layer._kind]["numerical"] for layer in net.leaves())


def _single_threaded_blas() -> Any:
    """numpy's BLAS/LAPACK on one thread (with threadpoolctl, when installed): right after the core's
    threads finish, OpenBLAS's spinning threads make a 300×300 solve take 100 ms instead of 2 ms (and a
    1200×1200 ``eigh`` 3.4 s instead of 0.5 s on 2 busy cores); used for matrices below 4000."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(1)


def _ridge_solve(k: np.ndarray, y: np.ndarray, ridge: float) -> np.ndarray:
    """``(K + ridge·I)⁻¹ y`` by Cholesky, or the minimum-norm least-squares solution if ``K + ridge·I`` is
    numerically singular (ridge 0 with a nearly low-rank Gram)."""
    a = k + ridge * np.eye(k.shape[0])
    try:
        c = sla.cho_factor(a, lower=True, check_finite=False)
        out = sla.cho_solve(c, y, check_finite=False)
        if np.all(np.isfinite(out)):
            return out
    except (np.linalg.LinAlgError, sla.LinAlgError):
        pass
    return sla.lstsq(a, y, check_finite=False, cond=None)[0]


class MeasuredCurve(NamedTuple):
    """Measured learning curve (see :func:`measure_learning_curve`).

    Attributes:
        n: ``(P,)`` training-set sizes.
        error: ``(P,)`` mean over draws of the test error against the noiseless teacher.
        sem: ``(P,)`` standard error of that mean (standard deviation over draws / √draws).
        errors: ``(draws, P)`` each draw's test error.
        mode_error: ``(P, degrees)`` mean over draws of the error's power in each degree
            (:func:`sphere_power` of ``f̂ − f*`` on the test points), with ``mode_degrees``; else ``None``.
        mode_sem: its standard error, or ``None``.
    """

    n: np.ndarray
    error: np.ndarray
    sem: np.ndarray
    errors: np.ndarray
    mode_error: np.ndarray | None = None
    mode_sem: np.ndarray | None = None


class _Teacher:
    """A random function on the sphere with exactly the power ``power[k]`` in each degree ``k``: for each
    degree a sum of zonal harmonics ``Σ_j a_j P_k(x̂·ẑ_j)`` (in the degree-``k`` harmonic space) with random
    centres ``ẑ_j`` and Gaussian ``a_j``, rescaled so that its squared norm ``N_k⁻¹ aᵀ P_k(Z Zᵀ) a`` is ``power[k]``."""

    def __init__(self, dim: int, power: np.ndarray, rng: np.random.Generator, centres: int = 24) -> None:
        self.dim, self.degrees = dim, int(np.max(np.nonzero(power)[0], initial=-1)) + 1
        self.z = sphere_points(centres, dim, rng) / math.sqrt(dim)
        self.coef = np.zeros((max(self.degrees, 1), centres))
        if self.degrees == 0:
            return
        pz = gegenbauer(dim, self.degrees, np.clip(self.z @ self.z.T, -1, 1))
        mult = multiplicity(dim, np.arange(self.degrees))
        for k in range(self.degrees):
            if power[k] <= 0:
                continue
            a = rng.standard_normal(centres)
            norm2 = float(a @ pz[k] @ a) / mult[k]
            self.coef[k] = a * math.sqrt(power[k] / norm2)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.degrees == 0:
            return np.zeros(x.shape[0])
        t = np.clip((x / np.linalg.norm(x, axis=1, keepdims=True)) @ self.z.T, -1, 1)  # (M, J)
        p = gegenbauer(self.dim, self.degrees, t)  # (K, M, J)
        return np.einsum("kmj,kj->m", p, self.coef[: self.degrees])


def sphere_teacher(dim: int, power: ArrayLike, seed: int | np.random.Generator | None = None,
                   centres: int = 24) -> Callable[[np.ndarray], np.ndarray]:
    """A random function on the sphere ``x·x/dim = 1`` with exactly the power ``power[k]`` in degree ``k``
    (the teacher of :func:`measure_learning_curve`): for each degree, ``Σ_j a_j P_k(x̂·ẑ_j)`` over ``centres``
    random centres ``ẑ_j`` with Gaussian ``a_j``, rescaled to that power. Returns ``f(x) -> (M,)`` for ``x`` of
    shape ``(M, dim)``."""
    dim = _int_arg("dim", dim, 2)
    p = np.asarray(power, dtype=np.float64)
    if p.ndim != 1 or not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError("power: expected a 1-D array of powers ≥ 0 per degree")
    return _Teacher(dim, p, np.random.default_rng(seed), _int_arg("centres", centres, 1))


def measure_learning_curve(net: Network, dim: int, n: Sequence[int], power: ArrayLike, *, get: str = "ntk",
                           ridge: float = 0.0, noise: float = 0.0, draws: int = 20, n_test: int = 1000,
                           seed: int = 0, mode_degrees: int = 0,
                           progress: bool | Callable[[int, int], Any] = False) -> MeasuredCurve:
    """Kernel ridge regression with the kernel ``get`` of ``net`` on points uniform on the sphere
    ``x·x/dim = 1``, for a random teacher with power ``power[k]`` in degree ``k``, averaged over draws.

    Each draw picks a teacher (:class:`_Teacher`: a random element of the harmonic spaces of the
    degrees with power, scaled to exactly that power), ``max(n)`` training points (the training set of
    size ``P`` is the first ``P`` of them) and ``n_test`` fresh test points; labels are
    ``f*(x) + √noise·ε``; it computes ``f̂ = k(x, X)(K + ridge·I)⁻¹ y`` (one ``net.kernel`` call per draw, or
    per few draws for numerical activations, whose kernels are tabulated per call) and the mean squared test
    error against the noiseless ``f*``. With ``mode_degrees > 0`` it also
    measures the error's power in degrees ``0 … mode_degrees−1`` by :func:`sphere_power` on the test points.

    Returns:
        A :class:`MeasuredCurve` (mean, standard error, every draw).
    """
    net = _network(net)
    dim = _int_arg("dim", dim, 2)
    get = _get(get)
    sizes = np.asarray(n)
    if sizes.ndim != 1 or sizes.size == 0 or sizes.dtype.kind not in "iu" or np.any(sizes < 1):
        raise ValueError(f"n: expected a 1-D array of positive integer training-set sizes, got {n!r}")
    power = np.asarray(power, dtype=np.float64)
    if power.ndim != 1 or not np.all(np.isfinite(power)) or np.any(power < 0):
        raise ValueError("power: expected a 1-D array of powers ≥ 0 per degree")
    ridge, noise = _nonneg("ridge", ridge), _nonneg("noise", noise)
    draws = _int_arg("draws", draws, 1)
    n_test = _int_arg("n_test", n_test, 1)
    rng = np.random.default_rng(seed)
    pmax = int(sizes.max())
    errors = np.empty((draws, sizes.size))
    mode_degrees = _int_arg("mode_degrees", mode_degrees, 0)
    modes = np.empty((draws, sizes.size, mode_degrees))
    m = pmax + n_test
    # A numerical activation tabulates its kernel in every net.kernel call (about a second per layer): then
    # several draws share one call (their cross blocks are wasted, cheap next to the tabulation).
    chunk = max(1, 3000 // m) if _tabulated(net) else 1
    callback, bar = _progress(progress, "kernel regression")
    try:
        for first in range(0, draws, chunk):
            batch = []
            for _ in range(min(chunk, draws - first)):
                teacher = _Teacher(dim, power, rng)
                x = sphere_points(m, dim, rng)
                f = teacher(x)
                batch.append((x, f, f[:pmax] + math.sqrt(noise) * rng.standard_normal(pmax)))
            xs = np.concatenate([b[0] for b in batch])
            kk = net.kernel(xs, np.concatenate([b[0][:pmax] for b in batch]), get=get)
            for i, (x, f, y) in enumerate(batch):
                d = first + i
                k = kk[i * m:(i + 1) * m, i * pmax:(i + 1) * pmax]  # (pmax + n_test, pmax)
                with _single_threaded_blas():
                    for j, p in enumerate(sizes):
                        pred = k[pmax:, :p] @ _ridge_solve(k[:p, :p], y[:p], ridge)
                        errors[d, j] = float(np.mean((pred - f[pmax:]) ** 2))
                        if mode_degrees:
                            modes[d, j] = sphere_power(x[pmax:], pred - f[pmax:], mode_degrees)
                if callback is not None:
                    callback(d + 1, draws)
    finally:
        if bar is not None:
            bar.close()
    mean = errors.mean(axis=0)
    sem = errors.std(axis=0, ddof=1) / math.sqrt(draws) if draws > 1 else np.full(sizes.size, np.inf)
    mode_mean = mode_sem = None
    if mode_degrees:
        mode_mean = modes.mean(axis=0)
        mode_sem = modes.std(axis=0, ddof=1) / math.sqrt(draws) if draws > 1 else np.full(mode_mean.shape, np.inf)
    return MeasuredCurve(sizes.astype(np.float64), mean, sem, errors, mode_mean, mode_sem)
