"""Write the input spec from which neural-tangents computes tests/data/nt_graph_reference.json (issue 11).

    python benchmarks/nt_graph_reference_inputs.py /tmp/nt_graph_input.json
    /tmp/ntkrs-peer-venv/bin/python benchmarks/_nt_peer_stax.py --reference /tmp/nt_graph_input.json \\
        > tests/data/nt_graph_reference.json

(the peer venv: ``bash benchmarks/setup_peer_venv.sh /tmp/ntkrs-peer-venv``; about a minute on one core.)

Dense graphs built with stax's combinators (serial, parallel, FanOut, FanInSum, FanInProd,
FanInConcat, Identity, LayerNorm, Dropout) on x1 (5 x 7) and x2 (4 x 7) drawn from
``default_rng(11)``. Every network is a Python expression in stax syntax; the ntkrs test evaluates
the same string with ``stax`` bound to the ``ntkrs`` package. Where the names differ (NT's
numerical activations ``stax.ElementwiseNumerical(fn=jnp.tanh, deg=...)`` are ntkrs'
``stax.Tanh()``), ``nt_expr`` holds NT's spelling and ``expr`` ntkrs'. Numerical activations are
computed by NT at two quadrature degrees so that the test can use their difference as NT's own
error. ``invalid`` lists networks ntkrs must reject with ValueError (NT's own exception, or its
absence, is recorded); ``finite`` lists graphs whose NT parameters (``init_fn(PRNGKey(seed))``),
outputs and empirical kernels are recorded. Uses only numpy.
"""

import json
import sys

import numpy as np

# ---------------------------------------------------------------------------------------------
# building blocks (plain strings: the JSON file shows exactly what was run)
# ---------------------------------------------------------------------------------------------


def serial(*layers: str) -> str:
    return "stax.serial(" + ", ".join(layers) + ")"


def parallel(*layers: str) -> str:
    return "stax.parallel(" + ", ".join(layers) + ")"


def dense(n, w=None, b=None, param=None) -> str:
    args = [str(n)]
    if w is not None:
        args.append(f"W_std={w}")
    if b is not None:
        args.append(f"b_std={b}")
    if param is not None:
        args.append(f"parameterization={param!r}")
    return "stax.Dense(" + ", ".join(args) + ")"


def residual(block: str) -> str:
    """x + block(x): FanOut(2), parallel(block, Identity()), FanInSum()."""
    return serial("stax.FanOut(2)", parallel(block, "stax.Identity()"), "stax.FanInSum()")


RELU, ERF, LN, ID = "stax.Relu()", "stax.Erf()", "stax.LayerNorm()", "stax.Identity()"
FANOUT2, SUM, PROD, CONCAT = "stax.FanOut(2)", "stax.FanInSum()", "stax.FanInProd()", "stax.FanInConcat()"


def act_template(act: str) -> str:
    """The activation twice: inside a residual branch and after the sum."""
    return serial(dense(8, 1.2, 0.1), residual(serial(act, dense(8, 1.1, 0.05))), act, dense(1, 0.9, 0.1))


def act_template_once(act: str) -> str:
    """The activation once (for RectifiedMonomial, whose NT kernel is NaN at θ = 0: see the memo)."""
    return serial(dense(8, 1.2, 0.1), residual(dense(8, 1.1, 0.05)), act, dense(1, 0.9, 0.1))


def cases() -> dict[str, dict]:
    c: dict[str, dict] = {}

    def add(name, expr, note="", **kw):
        assert name not in c, name
        c[name] = {"expr": expr, "inputs": "dense", "note": note, **kw}

    # --- residual blocks -------------------------------------------------------------------
    add("resnet/post_activation",
        serial(dense(8, 1.5, 0.1), residual(serial(RELU, dense(8, 1.3, 0.2))), RELU, dense(1, 1.0, 0.1)),
        "x + Dense(Relu(x)), then Relu: the original ResNet ordering")
    add("resnet/pre_layernorm",
        serial(dense(8, 1.5, 0.1), FANOUT2, parallel(serial(LN, RELU, dense(8, 1.3)), ID), SUM, dense(1)),
        "the brief's example: x + Dense(Relu(LayerNorm(x)))")
    add("resnet/post_layernorm",
        serial(dense(8, 1.5, 0.1), residual(serial(RELU, dense(8, 1.3, 0.2))), LN, RELU, dense(1, 1.0, 0.1)),
        "LayerNorm(x + Dense(Relu(x))), as in the original transformer")
    block = serial(LN, RELU, dense(8, 1.4, 0.1), RELU, dense(8, 1.2, 0.05))
    add("resnet/pre_layernorm_3_blocks",
        serial(dense(8, 1.5, 0.1), residual(block), residual(block), residual(block), LN, dense(1, 1.0, 0.2)),
        "three pre-LN blocks of two Dense each, final LayerNorm")
    add("resnet/post_layernorm_2_blocks_erf",
        serial(dense(8, 1.1), residual(serial(ERF, dense(8, 1.6, 0.3))), LN,
               residual(serial(ERF, dense(8, 0.7, 0.1))), LN, ERF, dense(1, 1.3)),
        "two post-LN blocks with Erf")
    add("resnet/fanout3",
        serial(dense(8, 1.5, 0.1), "stax.FanOut(3)",
               parallel(serial(RELU, dense(8, 1.3, 0.2)), serial(ERF, dense(8, 0.8)), ID), SUM,
               RELU, dense(1, 1.0, 0.1)),
        "x + Dense(Relu(x)) + Dense(Erf(x))")
    add("resnet/deep_no_bias",
        serial(dense(8, 1.0), *[residual(serial(RELU, dense(8, 0.5)))] * 6, RELU, dense(1)),
        "six residual Relu blocks without biases (the variance grows by (1 + 0.25/2) per block)")
    add("resnet/fanout1",
        serial(dense(8, 1.5, 0.1), "stax.FanOut(1)", parallel(serial(RELU, dense(8, 1.3))), SUM, RELU, dense(1)),
        "a one-branch FanOut/parallel/FanInSum is the branch itself")

    # --- FanInConcat (NT averages the branches' covariances weighted by their widths) -----
    add("concat/equal_widths",
        serial(dense(8, 1.5, 0.1), FANOUT2, parallel(dense(8, 1.2), dense(8, 2.0, 0.3)), CONCAT, dense(1, 1.1, 0.1)),
        "equal widths: the plain mean of the two branches")
    add("concat/unequal_widths",
        serial(dense(8, 1.5, 0.1), FANOUT2, parallel(dense(3, 1.2), dense(9, 2.0, 0.3)), CONCAT, dense(1, 1.1, 0.1)),
        "widths 3 and 9: weights 3/12 and 9/12")
    add("concat/unequal_widths_nonlinear_branches",
        serial(dense(8, 1.5, 0.1), FANOUT2,
               parallel(serial(dense(4, 1.3, 0.2), RELU), serial(dense(12, 1.1), ERF)), CONCAT,
               dense(6, 1.2, 0.1), RELU, dense(1)),
        "Relu branch of width 4, Erf branch of width 12")
    add("concat/identity_branch",
        serial(dense(8, 1.5, 0.1), FANOUT2, parallel(ID, serial(RELU, dense(5, 1.4))), CONCAT, dense(1)),
        "the Identity branch has the previous layer's width (8), the other 5")
    add("concat/three_branches",
        serial(dense(8, 1.5, 0.1), "stax.FanOut(3)",
               parallel(dense(2, 0.9), serial(RELU, dense(5, 1.4, 0.1)), serial(ERF, dense(9, 1.7))),
               CONCAT, dense(6, 1.2), RELU, dense(1, 1.0, 0.1)),
        "widths 2, 5, 9; a Relu after the Dense that follows is allowed")
    add("concat/after_activation_then_dense",
        serial(dense(8, 1.5, 0.1), FANOUT2, parallel(serial(dense(6, 1.0), RELU), serial(dense(2, 1.0), "stax.Gelu()")),
               CONCAT, dense(4, 1.4, 0.2), ERF, dense(1)),
        "concatenated activations (not Gaussian) feed a Dense, which makes them Gaussian again")

    # --- FanInProd -----------------------------------------------------------------------
    add("prod/two_gaussian",
        serial(dense(8, 1.5, 0.1), FANOUT2, parallel(dense(8, 1.1, 0.2), dense(8, 0.9, 0.3)), PROD, dense(1)),
        "the product of two independent Gaussian branches")
    add("prod/nonlinear_branches",
        serial(dense(8, 1.5, 0.1), FANOUT2, parallel(serial(dense(8, 1.3), RELU), serial(dense(8, 1.1, 0.2), ERF)),
               PROD, dense(1, 1.0, 0.1)),
        "FanInProd accepts non-Gaussian branches (the product of independent branches)")
    add("prod/three_branches_with_identity",
        serial(dense(8, 1.2, 0.1), "stax.FanOut(3)", parallel(ID, dense(8, 0.8, 0.2), serial(RELU, dense(8, 1.3))),
               PROD, dense(1)),
        "three factors, one of them the previous layer itself")
    add("prod/in_the_middle",
        serial(dense(8, 1.5, 0.1), FANOUT2, parallel(dense(8, 1.1), dense(8, 0.9, 0.3)), PROD,
               dense(8, 1.2, 0.1), RELU, dense(1)),
        "a Dense after the product is Gaussian again, so a Relu may follow it")

    # --- Dropout (rate = keep probability) ------------------------------------------------
    add("dropout/train_after_relu",
        serial(dense(8, 1.5, 0.1), RELU, "stax.Dropout(0.8)", dense(1, 1.0, 0.1)),
        "diagonal of k(x1, x1) multiplied by 1/0.8; k(x1, x2) unchanged")
    add("dropout/test_after_relu",
        serial(dense(8, 1.5, 0.1), RELU, "stax.Dropout(0.8, mode='test')", dense(1, 1.0, 0.1)),
        "test mode is the identity")
    add("dropout/train_between_dense",
        serial(dense(8, 1.5, 0.1), "stax.Dropout(0.6, mode='train')", dense(8, 1.2, 0.2), RELU, dense(1)),
        "after a Dense, Dropout, a Dense makes the signal Gaussian again")
    add("dropout/train_in_residual_branch",
        serial(dense(8, 1.5, 0.1), residual(serial(RELU, "stax.Dropout(0.7)", dense(8, 1.3, 0.2))), RELU, dense(1)),
        "dropout inside a residual branch")
    add("dropout/train_twice",
        serial(dense(8, 1.5, 0.1), RELU, "stax.Dropout(0.9)", dense(8, 1.1), ERF, "stax.Dropout(0.5)",
               dense(1, 1, 0.1)),
        "two dropout layers: the factors compound through the next layer's map")
    add("dropout/rate_one",
        serial(dense(8, 1.5, 0.1), RELU, "stax.Dropout(1.0)", dense(1, 1.0, 0.1)),
        "rate 1 keeps everything: the identity")

    # --- nesting --------------------------------------------------------------------------
    inner = serial(dense(8, 1.1, 0.1), FANOUT2, parallel(serial(RELU, dense(8, 0.9)), ID), SUM)
    add("nested/serial_parallel",
        serial(serial(dense(8, 1.5, 0.1), RELU), FANOUT2,
               parallel(serial(inner, ERF, dense(8, 1.2)), serial(dense(8, 0.7, 0.2), ID)),
               SUM, serial(serial(RELU), dense(1))),
        "serial inside parallel inside serial, a residual block inside a branch")
    add("nested/parallel_of_parallel",
        serial(dense(8, 1.3, 0.1), FANOUT2,
               parallel(serial(FANOUT2, parallel(dense(8, 1.0), serial(RELU, dense(8, 1.5))), SUM), dense(8, 0.6, 0.2)),
               SUM, RELU, dense(1)),
        "a FanOut/parallel/FanInSum nested inside a branch of another")

    # --- LayerNorm ------------------------------------------------------------------------
    add("layernorm/default_eps",
        serial(dense(8, 1.5, 0.1), LN, RELU, dense(8, 1.2, 0.1), LN, ERF, dense(1)),
        "eps = 1e-12")
    add("layernorm/large_eps",
        serial(dense(8, 1.5, 0.1), "stax.LayerNorm(eps=0.5)", RELU, dense(8, 0.4, 0.1), "stax.LayerNorm(eps=0.5)",
               ERF, dense(1)),
        "eps = 0.5: the kernel is K / sqrt((q1 + eps)(q2 + eps))")
    add("layernorm/explicit_axis",
        serial(dense(8, 1.5, 0.1), "stax.LayerNorm(axis=-1, eps=1e-3)", "stax.Gelu()", dense(1, 1.0, 0.1)),
        "axis=-1 spelled out")
    add("layernorm/hermite_unit_variance",
        serial(dense(8, 1.5, 0.1), LN, "stax.Hermite(2)", dense(8, 1.0), LN, "stax.Hermite(3)", dense(1)),
        "NT's Hermite kernel ρ**n is exact only at unit variance, which LayerNorm provides")

    # --- parameterisations ---------------------------------------------------------------
    S = "standard"
    add("standard/mlp_widths",
        serial(dense(16, 1.5, 0.1, S), RELU, dense(4, 1.2, 0.2, S), ERF, dense(1, 0.9, 0.1, S)),
        "the standard NTK depends on the widths (16, 4)")
    add("standard/residual",
        serial(dense(8, 1.5, 0.1, S),
               residual(serial(RELU, dense(16, 1.3, 0.2, S), RELU, dense(8, 0.8, None, S))),
               RELU, dense(1, 1.0, 0.1, S)),
        "residual branch with an inner width of 16")
    add("standard/concat_unequal_widths",
        serial(dense(8, 1.5, 0.1, S), FANOUT2,
               parallel(serial(dense(3, 1.2, None, S), RELU), serial(dense(9, 2.0, 0.3, S), ERF)),
               CONCAT, dense(1, 1.1, 0.1, S)),
        "concatenated widths 3 + 9 = 12 enter the last Dense's NTK as n_in = 12")
    add("standard/prod",
        serial(dense(6, 1.5, 0.1, S), FANOUT2, parallel(dense(5, 1.1, 0.2, S), dense(5, 0.9)),
               PROD, dense(1, 1.0, None, S)),
        "mixed parameterisations inside a product")
    add("standard/layernorm",
        serial(dense(10, 1.5, 0.1, S), LN, RELU, dense(3, 1.0, 0.1, S), LN, dense(1, 1.0, 0.1, S)),
        "LayerNorm between standard Dense layers")
    add("identity_layer_on_inputs",
        serial(ID, dense(4, 1.3, 0.2), ID, RELU, ID, dense(1)),
        "Identity as a layer anywhere, including on the raw inputs")

    # --- every closed-form activation, twice in a residual net ---------------------------
    acts = {
        "Relu": "stax.Relu()", "LeakyRelu": "stax.LeakyRelu(0.1)", "ABRelu": "stax.ABRelu(-0.3, 0.7)",
        "Abs": "stax.Abs()", "Erf": "stax.Erf()", "Erf_abc": "stax.Erf(a=1.2, b=0.7, c=0.1)",
        "Sigmoid_like": "stax.Sigmoid_like()", "Gelu": "stax.Gelu()", "Sin": "stax.Sin()",
        "Sin_abc": "stax.Sin(a=0.8, b=1.3, c=0.4)", "Cos": "stax.Cos()", "Rbf": "stax.Rbf(0.5)",
        "Exp": "stax.Exp(a=0.6, b=0.3)", "Gaussian": "stax.Gaussian(a=1.0, b=-0.6)", "Sign": "stax.Sign()",
        "Monomial2": "stax.Monomial(2)", "Monomial3": "stax.Monomial(3)",
        "Polynomial": "stax.Polynomial([0.1, -0.4, 0.3, 0.2])",
    }
    for name, act in acts.items():
        add(f"activation/{name}", act_template(act), "the activation inside the branch and after the sum")
    for k in (1, 2):
        add(f"activation/RectifiedMonomial{k}", act_template_once(f"stax.RectifiedMonomial({k})"),
            "once only: NT's own-variance term is NaN (diagonal of k(x1, x1) null)")

    # --- numerical activations: NT's Gauss-Hermite quadrature at two degrees ---------------
    numerical = {"Tanh": ("stax.Tanh()", "jnp.tanh"), "Silu": ("stax.Silu()", "jax.nn.silu"),
                 "Elu": ("stax.Elu()", "jax.nn.elu")}
    for name, (mine, fn) in numerical.items():
        add(f"numerical/{name}", act_template(mine),
            "NT: ElementwiseNumerical (2-D Gauss-Hermite) at two degrees; their difference is NT's error",
            nt_expr=act_template(f"stax.ElementwiseNumerical(fn={fn}, deg={{deg}})"), degrees=[150, 300])
    return c


def invalid() -> dict[str, dict]:
    """Networks ntkrs must reject with a ValueError (NT's own reaction is recorded)."""
    v: dict[str, dict] = {}

    def add(name, expr, note, **kw):
        v[name] = {"expr": expr, "inputs": "dense", "note": note, **kw}

    add("activation_on_raw_inputs", serial(RELU, dense(1)), "inputs are not Gaussian")
    add("layernorm_on_raw_inputs", serial(LN, dense(1)), "NT: NotImplementedError")
    add("layernorm_after_activation", serial(dense(8), RELU, LN, dense(1)), "NT: NotImplementedError")
    add("fanin_sum_identity_after_activation",
        serial(dense(8), RELU, FANOUT2, parallel(dense(8), ID), SUM, dense(1)),
        "the Identity branch carries a Relu output (not Gaussian); NT: NotImplementedError")
    add("fanin_sum_identity_of_raw_inputs",
        serial(FANOUT2, parallel(dense(7), ID), SUM, dense(1)),
        "the Identity branch carries the raw inputs (7 wide, not Gaussian); NT: NotImplementedError")
    add("fanin_sum_different_widths", serial(dense(8), FANOUT2, parallel(dense(3), dense(4)), SUM, dense(1)),
        "branches 3 and 4 wide")
    add("fanin_prod_different_widths", serial(dense(8), FANOUT2, parallel(dense(3), dense(4)), PROD, dense(1)),
        "branches 3 and 4 wide")
    add("activation_after_concat", serial(dense(8), FANOUT2, parallel(dense(3), dense(4)), CONCAT, RELU, dense(1)),
        "NT marks a channel concatenation non-Gaussian")
    add("activation_after_prod", serial(dense(8), FANOUT2, parallel(dense(4), dense(4)), PROD, RELU, dense(1)),
        "a product of Gaussians is not Gaussian")
    add("activation_after_dropout", serial(dense(8), "stax.Dropout(0.8)", RELU, dense(1)),
        "train-mode dropout makes the signal non-Gaussian")
    add("dropout_on_raw_inputs", serial("stax.Dropout(0.8)", dense(1)),
        "NT means to raise 'Dropout cannot be applied to the input layer' but its is_input flag is never "
        "set, so it fails with an IndexError on the NTK (and silently scales the NNGP diagonal)")
    add("concat_along_batch_axis",
        serial(dense(8), FANOUT2, parallel(dense(4), dense(4, 2.0)), "stax.FanInConcat(axis=0)", dense(1)),
        "NT only warns and returns a (2·N1) x (2·N1) kernel with zero off-diagonal blocks")
    add("fanout3_into_parallel2", serial(dense(8), "stax.FanOut(3)", parallel(dense(8), dense(8)), SUM, dense(1)),
        "NT silently drops the third branch (zip truncation in parallel)")
    add("fanout_without_fanin", serial(dense(8), FANOUT2, parallel(dense(8), dense(8)), dense(1)),
        "two branches reach a Dense; NT fails with an AttributeError/TypeError")
    add("fanin_without_fanout", serial(dense(8), SUM, dense(1)), "a FanIn on a single signal; NT: NotImplementedError")
    add("parallel_without_fanout", serial(dense(8), parallel(dense(8), dense(8)), SUM, dense(1)),
        "parallel on a single signal; NT: TypeError")
    add("fanin_sum_dependent_branches", serial(dense(8), FANOUT2, parallel(ID, LN), SUM, dense(1)),
        "x + LayerNorm(x): the branches are not independent (no fresh Dense in either); NT assumes "
        "independence anyway (it only warns) and returns K + K/sqrt(q q'), missing the cross terms")
    add("fanin_prod_dependent_branches", serial(dense(8), FANOUT2, parallel(ID, ID), PROD, dense(1)),
        "x * x: NT returns K² as if independent; the true E[x²x'²] is q q' + 2K²")
    add("layernorm_missing_axis", serial(dense(8), "stax.LayerNorm(axis=5)", dense(1)),
        "axis 5 does not exist on (N, C); NT: IndexError")
    add("layernorm_without_channel_axis", serial(dense(8), "stax.LayerNorm(axis=0)", dense(1)),
        "LayerNorm must include the channel axis")
    add("dropout_rate_zero", serial(dense(8), RELU, "stax.Dropout(0.0)", dense(1)), "rate must be in (0, 1]")
    add("dropout_rate_above_one", serial(dense(8), RELU, "stax.Dropout(1.5)", dense(1)), "rate must be in (0, 1]")
    add("dropout_bad_mode", serial(dense(8), RELU, "stax.Dropout(0.5, mode='eval')", dense(1)),
        "mode must be 'train' or 'test'")
    add("dense_bad_parameterization", serial(dense(8, param="mup"), dense(1)),
        "parameterization must be 'ntk' or 'standard'")
    return v


def finite() -> dict[str, dict]:
    """Finite-width graphs: NT's init (PRNGKey(seed)), apply and empirical kernels are recorded."""
    f: dict[str, dict] = {}

    def add(name, expr, seed, note):
        f[name] = {"expr": expr, "inputs": "dense", "seed": seed, "note": note}

    add("resnet/post_activation",
        serial(dense(6, 1.5, 0.1), residual(serial(RELU, dense(6, 1.3, 0.2))), RELU, dense(3, 1.0, 0.1)), 1,
        "parameters: [Dense, [FanOut, (branch, Identity), FanInSum], Relu, Dense]")
    add("resnet/pre_layernorm",
        serial(dense(6, 1.5, 0.1), FANOUT2, parallel(serial(LN, RELU, dense(6, 1.3)), ID), SUM, dense(3)), 2,
        "finite LayerNorm subtracts the mean over channels and divides by sqrt(var + 1e-12)")
    add("resnet/post_layernorm",
        serial(dense(6, 1.5, 0.1), residual(serial(ERF, dense(6, 1.3, 0.2))), "stax.LayerNorm(eps=0.1)", RELU,
               dense(3, 1.0, 0.1)), 3,
        "post-LN with eps 0.1")
    add("concat/unequal_widths",
        serial(dense(6, 1.5, 0.1), FANOUT2, parallel(serial(dense(2, 1.2), RELU), dense(5, 2.0, 0.3)), CONCAT,
               dense(3, 1.1, 0.1)), 4,
        "concatenated widths 2 + 5")
    add("prod/two_branches",
        serial(dense(6, 1.5, 0.1), FANOUT2, parallel(dense(4, 1.1, 0.2), serial(dense(4, 0.9), "stax.Gelu()")), PROD,
               dense(3)), 5,
        "elementwise product of a Dense and a Gelu branch")
    add("standard/residual",
        serial(dense(6, 1.5, 0.1, "standard"), residual(serial(RELU, dense(6, 1.3, 0.2, "standard"))), RELU,
               dense(3, 1.0, 0.1, "standard")), 6,
        "standard parameterisation: W ~ N(0, W_std²/n_in), b ~ N(0, b_std²) in the parameters")
    return f


def main(path):
    rng = np.random.default_rng(11)
    x1 = rng.standard_normal((5, 7))
    x2 = rng.standard_normal((4, 7))
    spec = {"dtype": "float64", "inputs": {"dense": {"x1": x1.tolist(), "x2": x2.tolist()}},
            "cases": cases(), "invalid": invalid(), "finite": finite()}
    for group in ("cases", "invalid", "finite"):
        for name, case in spec[group].items():
            assert "jnp" not in case["expr"] and "jax" not in case["expr"], (name, "ntkrs expressions use stax only")
    with open(path, "w") as f:
        json.dump(spec, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "nt_graph_input.json")
