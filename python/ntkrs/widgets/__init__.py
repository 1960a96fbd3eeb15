"""Jupyter dashboards for exploring infinite-width kernels (ipywidgets 8 + matplotlib, no ipympl).

Each dashboard is one call returning a widget: ``KernelExplorer()``, ``PhaseDiagram()``,
``ConvergenceExplorer()`` (finite-width NTKs against the limit), ``TrainingExplorer()`` (gradient-descent
dynamics against the infinite-width ensemble) or ``SpectrumExplorer()`` (Mercer eigenvalues on the sphere and
predicted against measured learning curves of kernel regression); it
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
from .convergence import ConvergenceExplorer
from .kernel_explorer import KernelExplorer
from .phase_diagram import PhaseDiagram
from .spectrum import SpectrumExplorer
from .training import TrainingExplorer

__all__ = ["ACTIVATIONS", "ConvergenceExplorer", "Dashboard", "KernelExplorer", "PhaseDiagram", "SpectrumExplorer",
           "TrainingExplorer", "datasets", "make_activation", "meanfield"]
