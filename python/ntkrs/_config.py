"""Threads and build configuration."""

from __future__ import annotations

import operator
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


def show_config(print_out: bool = True) -> dict[str, Any]:
    """Print and return the version, the SIMD level detected at start-up and the thread count."""
    cfg = {
        "version": _core.__version__,
        "simd": _core.simd_level(),
        "threads": _core.get_num_threads(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
    }
    if print_out:
        for k, v in cfg.items():
            print(f"{k:>8}: {v}")
    return cfg
