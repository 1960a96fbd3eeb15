"""Threads and build configuration."""

from __future__ import annotations

import operator
import os
import platform
from typing import Any

import numpy as np

from . import _core


def set_num_threads(n: int) -> None:
    """Use ``n`` worker threads for every computation (0: one per logical CPU)."""
    if isinstance(n, bool):
        raise TypeError("n: expected an integer number of threads, got bool")
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"n: expected an integer number of threads, got {n!r}") from None
    _core.set_num_threads(n)


def get_num_threads() -> int:
    """Number of worker threads."""
    return _core.get_num_threads()


def set_simd_level(level: str) -> None:
    """Force the SIMD instruction set of later computations.

    ``level`` is ``"scalar"``, ``"avx2"`` or ``"avx512"``. By default ntkrs uses the best level the
    CPU supports, or the one named by the environment variable ``NTKRS_SIMD`` (read once, at the
    first computation; an unknown or unsupported value is reported on stderr and ignored). Every
    level computes the same kernels up to rounding (fused multiply-adds); forcing ``"scalar"``
    rules out a CPU-specific problem. Raises ``ValueError`` when the level is unknown or not
    supported by this CPU (see ``show_config()["simd_supported"]``).
    """
    if not isinstance(level, str):
        raise TypeError(f"level: expected 'scalar', 'avx2' or 'avx512', got {level!r}")
    _core.set_simd_level(level)


def show_config(print_out: bool = True) -> dict[str, Any]:
    """Print and return the version, the SIMD level in use (and those the CPU supports; see
    :func:`set_simd_level` and ``NTKRS_SIMD``) and the thread count."""
    cfg = {
        "version": _core.__version__,
        "simd": _core.simd_level(),
        "simd_supported": ", ".join(_core.supported_simd_levels()),
        "NTKRS_SIMD": os.environ.get("NTKRS_SIMD", ""),
        "threads": _core.get_num_threads(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
    }
    if print_out:
        for k, v in cfg.items():
            print(f"{k:>8}: {v}")
    return cfg
