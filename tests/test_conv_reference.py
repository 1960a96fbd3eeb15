"""The numpy reference for finite-width CNNs (``tests/conv_reference.py``) against
neural-tangents' own numbers (``tests/data/nt_conv_reference.json``, section ``finite``: outputs
and traced empirical kernels of four conv networks with NT's parameters, float64): the reference
that ntkrs's finite-width CNNs (not implemented yet, issue 12) will be checked against."""

from __future__ import annotations

import conv_reference as cr
import nt_stax_reference as nsr
import numpy as np
import pytest

REF = nsr.load("nt_conv_reference.json")
FINITE = list(REF["finite"])


@pytest.mark.parametrize("name", FINITE)
def test_numpy_cnn_apply_equals_neural_tangents(name):
    """Direct numpy convolution, pooling and readouts give NT's outputs to 1e-12 of the largest:
    the padding amounts (SAME, VALID, CIRCULAR), strides, AvgPool's/SumPool's windows, the NTK
    and standard parameterizations and NT's parameter layout (HWIO filters) are NT's."""
    case = REF["finite"][name]
    net = nsr.build(case["expr"])
    params = nsr.decode_params(case["params"])
    x1, x2 = nsr.inputs(REF, case)
    for x, key in ((x1, "apply_x1"), (x2, "apply_x2")):
        want = np.asarray(case[key])
        got = cr.apply(net, params, x)
        assert got.shape == want.shape
        nsr.assert_close(got, want, 1e-12 * nsr.scale(want), 0.0, f"{name} {key}")


@pytest.mark.parametrize("name", FINITE)
def test_finite_difference_ntk_equals_neural_tangents(name):
    """The traced empirical NTK from an explicit finite-difference Jacobian of the numpy
    reference equals NT's (autodiff) to 1e-6 relative: central differences with h = 1e-5 have a
    truncation error O(h²·f''') ≈ 1e-10 and a rounding error O(ε·|f|/h) ≈ 1e-11 per entry of J,
    so 1e-6 leaves a wide margin yet catches any wrong term (a missing layer's term is O(1))."""
    case = REF["finite"][name]
    net = nsr.build(case["expr"])
    params = nsr.decode_params(case["params"])
    x1, x2 = nsr.inputs(REF, case)
    for field, other in (("x1_x1", None), ("x1_x2", x2)):
        want = np.asarray(case[field]["ntk"])
        got = cr.empirical_ntk(net, params, x1, other)
        nsr.assert_close(got, want, 1e-6 * nsr.scale(want), 0.0, f"{name} {field} ntk")
        nngp = cr.apply(net, params, x1) @ cr.apply(net, params, x1 if other is None else other).T
        nngp /= cr.apply(net, params, x1).shape[1]
        nsr.assert_close(nngp, np.asarray(case[field]["nngp"]), 1e-12 * nsr.scale(want), 0.0, f"{name} nngp")
