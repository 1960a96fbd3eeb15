"""neural-tangents' ``stax`` names in one place: ``import ntkrs.stax as stax`` (or ``import ntkrs as
stax``) and a network written for neural-tangents builds the same network here.

The layers live in :mod:`ntkrs.layers`, the networks in :mod:`ntkrs.network` and the out-of-core
plumbing in :mod:`ntkrs.out_of_core`; this module re-exports them.
"""

from __future__ import annotations

from . import layers as _layers
from .layers import *  # noqa: F403
from .layers import Layer, activation_from_name
from .network import Kernel, Network, Params, Trajectory, as_matrix, mlp, resnet, serial
from .out_of_core import parse_memory_limit

__all__ = [*_layers.__all__, "Kernel", "Layer", "Network", "Params", "Trajectory", "activation_from_name",
           "as_matrix", "mlp", "parse_memory_limit", "resnet", "serial"]
