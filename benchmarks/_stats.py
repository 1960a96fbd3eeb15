"""Shared summary of repeated timings for the benchmark scripts."""

from __future__ import annotations

import statistics


def spread(values: list[float], f: str = "{:.3f}", scale: float = 1.0) -> str:
    """``median (min–max)`` of ``values`` (each multiplied by ``scale``), formatted with ``f``."""
    v = [x * scale for x in values]
    return f"{f.format(statistics.median(v))} ({f.format(min(v))}–{f.format(max(v))})"
