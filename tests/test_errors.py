"""Invalid inputs and arguments raise ValueError/TypeError whose message names the argument;
a result too large for memory raises MemoryError at once, stating the size needed."""

from __future__ import annotations

import re
import time

import ntkrs as nk
import numpy as np
import pytest

X = np.random.default_rng(3).standard_normal((4, 3))
NET = nk.serial(nk.Dense(8, W_std=1.5, b_std=0.05), nk.Relu(), nk.Dense(1, W_std=1.5, b_std=0.05))
BAD_INPUT = (ValueError, TypeError)


def _with(value, row=1, col=2):
    x = X.copy()
    x[row, col] = value
    return x


# --- inputs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_x1_is_rejected_naming_x1(value):
    """NaN or ±inf in x1 → ValueError mentioning x1."""
    with pytest.raises(ValueError, match="x1"):
        NET.kernel(_with(value))


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_x2_is_rejected_naming_x2(value):
    """NaN or inf in x2 → ValueError mentioning x2."""
    with pytest.raises(ValueError, match="x2"):
        NET.kernel(X, _with(value))


def test_non_finite_input_rejected_in_diagonal_and_float32_modes():
    """The NaN check also applies with diagonal=True and dtype=np.float32."""
    with pytest.raises(ValueError, match="x1"):
        NET.kernel(_with(np.nan), diagonal=True)
    with pytest.raises(ValueError, match="x1"):
        NET.kernel(_with(np.nan), dtype=np.float32)


@pytest.mark.parametrize("shape", [(3,), (2, 3, 3), ()])
def test_wrong_ndim_x1_is_rejected_naming_x1(shape):
    """x1 must be 2-D: 0-D, 1-D and 3-D arrays → ValueError/TypeError mentioning x1."""
    with pytest.raises(BAD_INPUT, match="x1"):
        NET.kernel(np.ones(shape))


@pytest.mark.parametrize("shape", [(3,), (2, 4, 3)])
def test_wrong_ndim_x2_is_rejected_naming_x2(shape):
    """x2 must be 2-D → ValueError/TypeError mentioning x2."""
    with pytest.raises(BAD_INPUT, match="x2"):
        NET.kernel(X, np.ones(shape))


def test_mismatched_feature_counts_are_rejected():
    """x1 with 3 features and x2 with 4 → ValueError naming the argument."""
    with pytest.raises(ValueError, match="x[12]"):
        NET.kernel(X, np.ones((2, 4)))


@pytest.mark.parametrize(
    ("x1", "x2", "name"),
    [
        (np.zeros((0, 3)), None, "x1"),
        (np.zeros((4, 0)), None, "x1"),
        (X, np.zeros((0, 3)), "x2"),
        ([], None, "x1"),
        ([[]], None, "x1"),
    ],
)
def test_empty_inputs_are_rejected(x1, x2, name):
    """0 rows or 0 features → ValueError naming the argument."""
    with pytest.raises(ValueError, match=name):
        NET.kernel(x1, x2)


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(X.astype(np.complex128), id="complex"),
        pytest.param(X.astype(object), id="object-of-floats"),
        pytest.param(np.array([[1.0, None, 2.0]], dtype=object), id="object-with-None"),
        pytest.param(np.array([["a", "b", "c"]]), id="unicode"),
        pytest.param(np.array([[b"1", b"2", b"3"]]), id="bytes"),
        pytest.param([["1.0", "2.0", "3.0"]], id="list-of-strings"),
    ],
)
def test_non_real_numeric_dtypes_are_rejected(bad):
    """Complex, object and string arrays → TypeError/ValueError naming x1 (and x2 when there)."""
    with pytest.raises(BAD_INPUT, match="x1"):
        NET.kernel(bad)
    with pytest.raises(BAD_INPUT, match="x2"):
        NET.kernel(np.ones((2, 3)), bad)


# --- kernel() keyword arguments ---------------------------------------------------------------


@pytest.mark.parametrize("get", ["foo", ("nngp", "bar"), ("ntk", "ntk"), (), "NNGP", 3, ["nngp", 1]])
def test_unknown_get_is_rejected(get):
    """get must be "nngp", "ntk" or a tuple of distinct ones → ValueError/TypeError naming get."""
    with pytest.raises(BAD_INPUT, match="get"):
        NET.kernel(X, get=get)


def test_diagonal_with_x2_is_rejected():
    """diagonal=True is only defined for x2=None → ValueError naming diagonal."""
    with pytest.raises(ValueError, match="diagonal"):
        NET.kernel(X, X, diagonal=True)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float16, np.complex128, "float128-ish", object])
def test_non_float_dtype_is_rejected(dtype):
    """dtype must be float32 or float64 → ValueError/TypeError naming dtype."""
    with pytest.raises(BAD_INPUT, match="dtype"):
        NET.kernel(X, dtype=dtype)


def test_float_dtypes_given_as_strings_and_types_are_accepted():
    """np.float64, "float64", np.dtype("float32") etc. are accepted and honoured."""
    for dt, want in (
        (np.float64, np.float64),
        ("float64", np.float64),
        (np.dtype("float32"), np.float32),
        ("float32", np.float32),
    ):
        assert NET.kernel(X, get="nngp", dtype=dt).dtype == want


# --- layer construction -----------------------------------------------------------------------


@pytest.mark.parametrize("value", [-1.0, np.nan, -1e-300])
def test_negative_or_nan_w_std_is_rejected(value):
    """W_std < 0 or NaN → ValueError naming W_std (in Dense and in mlp)."""
    with pytest.raises(ValueError, match="W_std"):
        nk.Dense(3, W_std=value)
    with pytest.raises(ValueError, match="W_std"):
        nk.mlp(depth=1, width=3, W_std=value)


@pytest.mark.parametrize("value", [-0.5, np.nan])
def test_negative_or_nan_b_std_is_rejected(value):
    """b_std < 0 or NaN → ValueError naming b_std (in Dense and in mlp)."""
    with pytest.raises(ValueError, match="b_std"):
        nk.Dense(3, b_std=value)
    with pytest.raises(ValueError, match="b_std"):
        nk.mlp(depth=1, width=3, b_std=value)


@pytest.mark.parametrize("value", ["1.0", [1.0], None])
def test_non_numeric_w_std_is_rejected(value):
    """A non-number W_std → TypeError/ValueError naming W_std."""
    with pytest.raises(BAD_INPUT, match="W_std"):
        nk.Dense(3, W_std=value)


@pytest.mark.parametrize("width", [0, -1, -512])
def test_non_positive_width_is_rejected(width):
    """Dense(out_dim ≤ 0) names out_dim; mlp(width ≤ 0) and mlp(out_dim ≤ 0) name theirs (and
    mlp's width error does not blame out_dim, which is a different argument of mlp)."""
    with pytest.raises(ValueError, match="out_dim"):
        nk.Dense(width)
    with pytest.raises(ValueError, match="width") as info:
        nk.mlp(depth=2, width=width)
    assert "out_dim" not in str(info.value), f"mlp's width error blames out_dim, another argument: {info.value}"
    with pytest.raises(ValueError, match="out_dim"):
        nk.mlp(depth=2, width=8, out_dim=width)


@pytest.mark.parametrize("width", [2.5, "8", None])
def test_non_integer_width_is_rejected(width):
    """A non-integer width → TypeError/ValueError naming the argument."""
    with pytest.raises(BAD_INPUT, match="out_dim"):
        nk.Dense(width)
    with pytest.raises(BAD_INPUT, match="width") as info:
        nk.mlp(depth=1, width=width)
    assert "out_dim" not in str(info.value), f"mlp's width error blames out_dim, another argument: {info.value}"


@pytest.mark.parametrize("value", ["NTK", "foo", "", None])
def test_unknown_parameterization_is_rejected(value):
    """parameterization must be "ntk" or "standard" → ValueError/TypeError naming parameterization."""
    with pytest.raises(BAD_INPUT, match="parameterization"):
        nk.Dense(3, parameterization=value)
    with pytest.raises(BAD_INPUT, match="parameterization"):
        nk.mlp(depth=1, width=3, parameterization=value)


ORDER = re.compile(r"(?i)dense|activation|nonlinearit|follow|after")


def test_activation_first_is_rejected_when_the_network_is_used():
    """An activation needs a Gaussian input. serial(Relu(), Dense(1)) is a valid residual branch (after
    a FanOut of a Dense output), so building it is allowed; computing on raw inputs → ValueError."""
    net = nk.serial(nk.Relu(), nk.Dense(1))
    x = np.ones((2, 3))
    for use in (lambda: net.kernel(x), lambda: net.init(3), lambda: net.monte_carlo_kernel(x, n_samples=1)):
        with pytest.raises(ValueError, match=ORDER):
            use()


def test_two_activations_in_a_row_are_rejected():
    """serial(Dense, Relu, Erf, Dense) → ValueError."""
    with pytest.raises(ValueError, match=ORDER):
        nk.serial(nk.Dense(4), nk.Relu(), nk.Erf(), nk.Dense(1))


def test_non_layer_in_serial_is_rejected():
    """A class instead of an instance (nk.Relu) or another object in serial → TypeError."""
    with pytest.raises(TypeError, match="(?i)layer|Relu|Dense"):
        nk.serial(nk.Dense(4), nk.Relu, nk.Dense(1))
    with pytest.raises(TypeError):
        nk.serial(nk.Dense(4), "relu", nk.Dense(1))


@pytest.mark.parametrize("name", ["foo", "ReLUx", ""])
def test_unknown_activation_name_in_mlp_is_rejected(name):
    """mlp(activation=<unknown name>) → ValueError naming activation."""
    with pytest.raises(ValueError, match="activation"):
        nk.mlp(depth=2, width=8, activation=name)


@pytest.mark.parametrize("degree", [-1, -3])
def test_negative_monomial_degree_is_rejected(degree):
    """Monomial / RectifiedMonomial / Hermite degree must be ≥ 0 → ValueError naming degree."""
    for cls in (nk.Monomial, nk.RectifiedMonomial, nk.Hermite):
        with pytest.raises(BAD_INPUT, match="degree"):
            cls(degree=degree)


def test_divergent_gaussian_in_network_raises_value_error():
    """Gaussian(b > 0) whose expectation diverges at the network's variances → ValueError,
    never a NaN/inf kernel."""
    net = nk.serial(nk.Dense(2, W_std=2.0, b_std=0.5), nk.Gaussian(a=1.0, b=0.5), nk.Dense(1))
    with pytest.raises(ValueError):
        net.kernel(X * 3)


# --- overflow ---------------------------------------------------------------------------------


def test_overflow_in_the_analytic_kernel_is_a_non_finite_error():
    """A kernel that overflows raises NonFiniteError (a ValueError), never returns inf/NaN: found
    while planning (Exp's second moment at a huge variance, in float64), in the float32 tile pass
    (the variances fit in float64 but not in float32), and in the diagonal."""
    x = np.random.default_rng(5).standard_normal((40, 8))
    exp = nk.mlp(2, 8, "exp")
    for kw in ({}, {"diagonal": True}, {"x2": x[:5]}):
        with pytest.raises(nk.NonFiniteError, match="no finite second moment"):
            exp.kernel(x * 30, **kw)
    # ReLU without bias is homogeneous: k(s·x, s·x) = s²·k(x, x), ~5e33 here at s = 1, which float32
    # holds; at s = 1e3 the entries (~5e39) do not
    relu = nk.mlp(20, 64, "relu", W_std=8.0)
    assert np.isfinite(relu.kernel(x, dtype=np.float32)).all()
    with pytest.raises(nk.NonFiniteError, match="non-finite entries in float32"):
        relu.kernel(x * 1e3, dtype=np.float32)
    with pytest.raises(nk.NonFiniteError, match="not finite in float32"):
        relu.kernel(x * 1e3, dtype=np.float32, diagonal=True)
    want = relu.kernel(x * 1e3, dtype=np.float64)  # float64 holds them
    assert np.isfinite(want.ntk).all() and want.ntk.max() > 1e39


def test_inputs_too_large_for_float32_are_rejected():
    """Inputs above float32's range are a ValueError naming the argument; inputs whose squares (the
    input Gram) overflow float32 are a NonFiniteError; float64 computes both."""
    for name, args in (("x1", (np.full((3, 2), 1e39), None)), ("x2", (np.ones((3, 2)), np.full((2, 2), -1e39)))):
        with pytest.raises(ValueError, match=rf"{name}: values up to 1e\+39 do not fit in float32") as info:
            NET.kernel(*args, dtype=np.float32)
        assert not isinstance(info.value, nk.NonFiniteError)
    with pytest.raises(nk.NonFiniteError, match="magnitude 1.000e20 make the kernel overflow float32"):
        NET.kernel(np.full((3, 2), 1e20), dtype=np.float32)
    for big in (1e39, 1e20):
        assert np.isfinite(NET.kernel(np.full((3, 2), big), get="ntk")).all()


# --- memory -----------------------------------------------------------------------------------

SIZE = re.compile(r"\d[\d,.]*\s*(?:[KMGTPE]i?B|bytes?|[KMGTPE]B)", re.IGNORECASE)


@pytest.mark.parametrize(("x2", "get"), [(None, "nngp"), (None, ("nngp", "ntk")), ("same", "ntk")])
def test_result_too_large_for_memory_raises_memory_error_fast(x2, get):
    """3,000,000 × 3,000,000 float64 (72 TB per kernel) → MemoryError within 1 s whose message
    states the size needed."""
    x = np.zeros((3_000_000, 1))
    start = time.perf_counter()
    with pytest.raises(MemoryError) as info:
        NET.kernel(x, x if x2 == "same" else None, get=get)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, elapsed
    assert SIZE.search(str(info.value)), str(info.value)
