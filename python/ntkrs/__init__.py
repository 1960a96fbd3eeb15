"""ntkrs: fast infinite-width NNGP and NTK kernels of fully-connected networks.

>>> import numpy as np, ntkrs as nk
>>> net = nk.serial(nk.Dense(512, W_std=1.5, b_std=0.05), nk.Relu(), nk.Dense(1, W_std=1.5, b_std=0.05))
>>> x = np.random.default_rng(0).standard_normal((5, 3))
>>> k = net.kernel(x, get=("nngp", "ntk"))
>>> k.nngp.shape, k.ntk.shape
((5, 5), (5, 5))

Conventions follow neural-tangents' ``stax`` (see :mod:`ntkrs.stax`). Training dynamics and
Gaussian-process posteriors are in :mod:`ntkrs.predict` (neural-tangents' ``nt.predict``), and
scikit-learn kernels and an estimator in :mod:`ntkrs.sklearn` (imported on demand).
"""

from __future__ import annotations

from . import _core, predict
from ._config import get_num_threads, set_num_threads, show_config
from .stax import (
    ABRelu,
    Abs,
    Activation,
    Cos,
    Dense,
    Elementwise,
    Elu,
    Erf,
    Exp,
    Gaussian,
    Gelu,
    Hermite,
    Identity,
    Kernel,
    LeakyRelu,
    Mish,
    Monomial,
    Network,
    Polynomial,
    Rbf,
    RectifiedMonomial,
    Relu,
    Selu,
    Sigmoid,
    Sigmoid_like,
    Sign,
    Silu,
    Sin,
    Softplus,
    Tanh,
    Trajectory,
    mlp,
    serial,
)

__version__: str = _core.__version__

__all__ = [
    "ABRelu", "Abs", "Activation", "Cos", "Dense", "Elementwise", "Elu", "Erf", "Exp", "Gaussian",
    "Gelu", "Hermite", "Identity", "Kernel", "LeakyRelu", "Mish", "Monomial", "Network", "Polynomial",
    "Rbf", "RectifiedMonomial", "Relu", "Selu", "Sigmoid", "Sigmoid_like", "Sign", "Silu", "Sin",
    "Softplus", "Tanh", "Trajectory", "__version__", "get_num_threads", "mlp", "predict", "serial", "set_num_threads",
    "show_config",
]
