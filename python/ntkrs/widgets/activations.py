"""The named nonlinearities the dashboards offer, each with at most one tunable parameter."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .. import stax

__all__ = ["ACTIVATIONS", "ActivationChoice", "make_activation"]


@dataclass(frozen=True)
class ActivationChoice:
    """One dropdown entry: ``make(param)`` builds the activation; ``param`` is ``None`` when it has no
    tunable parameter, else ``(label, min, max, step, default)``."""

    make: Callable[[float], stax.Activation]
    param: tuple[str, float, float, float, float] | None = None
    numerical: bool = False


ACTIVATIONS: dict[str, ActivationChoice] = {
    "relu": ActivationChoice(lambda p: stax.Relu()),
    "leaky_relu": ActivationChoice(lambda p: stax.LeakyRelu(p), ("alpha", -1.0, 1.0, 0.05, 0.1)),
    "abs": ActivationChoice(lambda p: stax.Abs()),
    "identity": ActivationChoice(lambda p: stax.Identity()),
    "erf": ActivationChoice(lambda p: stax.Erf(b=p), ("b (erf(b·x))", 0.1, 4.0, 0.05, 1.0)),
    "sigmoid_like": ActivationChoice(lambda p: stax.Sigmoid_like()),
    "gelu": ActivationChoice(lambda p: stax.Gelu()),
    "sin": ActivationChoice(lambda p: stax.Sin(b=p), ("b (sin(b·x))", 0.1, 4.0, 0.05, 1.0)),
    "cos": ActivationChoice(lambda p: stax.Cos(b=p), ("b (cos(b·x))", 0.1, 4.0, 0.05, 1.0)),
    "rbf": ActivationChoice(lambda p: stax.Rbf(p), ("gamma", 0.05, 4.0, 0.05, 1.0)),
    "exp": ActivationChoice(lambda p: stax.Exp(b=p), ("b (exp(b·x))", 0.05, 2.0, 0.05, 0.5)),
    "gaussian": ActivationChoice(lambda p: stax.Gaussian(b=-p), ("width 1/b (exp(−b·x²))", 0.05, 4.0, 0.05, 1.0)),
    "sign": ActivationChoice(lambda p: stax.Sign()),
    "step": ActivationChoice(lambda p: stax.RectifiedMonomial(0)),
    "rectified_monomial": ActivationChoice(lambda p: stax.RectifiedMonomial(int(p)), ("degree", 0, 4, 1, 2)),
    "monomial": ActivationChoice(lambda p: stax.Monomial(int(p)), ("degree", 1, 5, 1, 2)),
    "hermite": ActivationChoice(lambda p: stax.Hermite(int(p)), ("degree", 1, 8, 1, 2)),
    "tanh": ActivationChoice(lambda p: stax.Tanh(), numerical=True),
    "sigmoid": ActivationChoice(lambda p: stax.Sigmoid(), numerical=True),
    "softplus": ActivationChoice(lambda p: stax.Softplus(), numerical=True),
    "silu": ActivationChoice(lambda p: stax.Silu(), numerical=True),
    "elu": ActivationChoice(lambda p: stax.Elu(p), ("alpha", 0.05, 3.0, 0.05, 1.0), numerical=True),
    "selu": ActivationChoice(lambda p: stax.Selu(), numerical=True),
    "mish": ActivationChoice(lambda p: stax.Mish(), numerical=True),
}
"""Every named nonlinearity of ntkrs (``stax._BY_NAME`` without aliases, plus ``LeakyRelu``, the step
function, monomials and Hermite polynomials). Closed-form ones are fast enough to follow a slider;
the ``numerical`` ones (quadrature in the Rust core) take about a second per layer."""


def make_activation(name: str, param: float | None = None) -> stax.Activation:
    """The activation called ``name`` in :data:`ACTIVATIONS`, with its parameter (default if ``None``)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation: unknown name {name!r}; use one of {sorted(ACTIVATIONS)}")
    choice = ACTIVATIONS[name]
    if param is None:
        param = choice.param[4] if choice.param else 0.0
    return choice.make(param)
