"""Jupyter dashboards for exploring infinite-width kernels (ipywidgets 8 + matplotlib, no ipympl).

Each dashboard is one call returning a widget, e.g. ``KernelExplorer()`` or ``PhaseDiagram()``; it
also works without a notebook frontend: drive it with ``set(...)``, read ``data`` and ``state``, and
save ``figure``. Install the extras with ``pip install "ntkrs[jupyter]"``.
"""

from __future__ import annotations

try:
    import ipywidgets  # noqa: F401
    import matplotlib  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("ntkrs.widgets needs ipywidgets and matplotlib: pip install 'ntkrs[jupyter]'") from exc

from . import datasets, meanfield
from ._base import Dashboard
from .activations import ACTIVATIONS, make_activation
from .kernel_explorer import KernelExplorer
from .phase_diagram import PhaseDiagram

__all__ = ["ACTIVATIONS", "Dashboard", "KernelExplorer", "PhaseDiagram", "datasets", "make_activation", "meanfield"]
