"""ntkrs: fast infinite-width NNGP and NTK kernels of fully-connected, residual and LayerNorm networks.

>>> import numpy as np, ntkrs as nk
>>> net = nk.serial(nk.Dense(512, W_std=1.5, b_std=0.05), nk.Relu(), nk.Dense(1, W_std=1.5, b_std=0.05))
>>> x = np.random.default_rng(0).standard_normal((5, 3))
>>> k = net.kernel(x, get=("nngp", "ntk"))
>>> k.nngp.shape, k.ntk.shape
((5, 5), (5, 5))

Conventions follow neural-tangents' ``stax`` (see :mod:`ntkrs.stax`): layers in
:mod:`ntkrs.layers`, networks in :mod:`ntkrs.network`. Training dynamics and
Gaussian-process posteriors are in :mod:`ntkrs.predict` (neural-tangents' ``nt.predict``), and
scikit-learn kernels and an estimator in :mod:`ntkrs.sklearn` (imported on demand).
"""

from __future__ import annotations

from . import _core, predict, stax
from . import layers as _layers
from ._config import get_num_threads, set_num_threads, set_simd_level, show_config
from ._core import NonFiniteError
from .layers import *  # noqa: F403
from .network import Kernel, Network, Trajectory, mlp, resnet, serial

__version__: str = _core.__version__

__all__ = [
    *_layers.__all__, "Kernel", "Network", "NonFiniteError", "Trajectory", "__version__", "get_num_threads", "mlp",
    "predict", "stax", "resnet", "serial", "set_num_threads", "set_simd_level", "show_config",
]
