"""The named nonlinearities the dashboards offer, each with at most one tunable parameter, built from
the core's activation registry (:data:`ntkrs.layers.REGISTRY`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..layers import ACTIVATION_CLASSES, REGISTRY, Activation

__all__ = ["ACTIVATIONS", "ActivationChoice", "make_activation"]


@dataclass(frozen=True)
class ActivationChoice:
    """One dropdown entry: ``make(param)`` builds the activation; ``param`` is ``None`` when it has no
    tunable parameter, else ``(label, min, max, step, default)``."""

    make: Callable[[float], Activation]
    param: tuple[str, float, float, float, float] | None = None
    numerical: bool = False


def _choice(key: str) -> ActivationChoice:
    entry = REGISTRY[key]
    cls = ACTIVATION_CLASSES[key]
    params = entry["params"]
    base = [p["default"] if p["default"] is not None else p["typical"] for p in params]
    tunable = entry["tunable"]
    integer = [p["integer"] for p in params]

    def make(value: float, base: list[float] = base) -> Activation:
        args = list(base)
        if tunable is not None:
            args[tunable] = value
        return cls(*(int(a) if i else a for a, i in zip(args, integer, strict=True)))

    spec = None
    if tunable is not None:
        p = params[tunable]
        lo, hi = p["range"]
        step = 1.0 if p["integer"] else 0.05
        spec = (p["name"], lo, hi, step, p["typical"])
    return ActivationChoice(make, spec, entry["numerical"])


ACTIVATIONS: dict[str, ActivationChoice] = {
    key: _choice(key) for key in REGISTRY if key not in ("polynomial", "elementwise")
}
"""Every activation of the registry but ``Polynomial`` and ``Elementwise`` (which take a coefficient
list or a function), by key. Closed-form ones are fast enough to follow a slider; the ``numerical``
ones (quadrature in the Rust core) take about a second per layer when the norms differ."""


def make_activation(name: str, param: float | None = None) -> Activation:
    """The activation called ``name`` in :data:`ACTIVATIONS`, with its parameter (default if ``None``)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation: unknown name {name!r}; use one of {sorted(ACTIVATIONS)}")
    choice = ACTIVATIONS[name]
    if param is None:
        param = choice.param[4] if choice.param else 0.0
    return choice.make(param)
