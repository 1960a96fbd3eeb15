"""Write the input spec from which neural-tangents computes tests/data/nt_conv_reference.json (issue 12).

    python benchmarks/nt_conv_reference_inputs.py /tmp/nt_conv_input.json
    /tmp/ntkrs-peer-venv/bin/python benchmarks/_nt_peer_stax.py --reference /tmp/nt_conv_input.json \\
        > tests/data/nt_conv_reference.json

(the peer venv: ``bash benchmarks/setup_peer_venv.sh /tmp/ntkrs-peer-venv``; a few minutes on one core.)

Convolutional networks in stax syntax (NHWC images, NLC sequences; filters HWIO): every padding
(VALID, SAME, CIRCULAR), strides 1 and 2 (unequal per axis), odd, even and non-square filters,
AvgPool / SumPool (window, strides, padding, normalize_edges), GlobalAvgPool, GlobalSumPool and
Flatten readouts, Dense after and before the readout, residual conv blocks, LayerNorm over
channels and over (H, W, C), FanInConcat / FanInProd of conv branches, Dropout, ntk and standard
parameterisation, closed-form and one numerical activation. Inputs from ``default_rng(12)``:
images x1 (3, 5, 6, 2), x2 (2, 5, 6, 2); sequences x1 (3, 7, 2), x2 (2, 7, 2). Same format as
``nt_graph_reference_inputs.py`` (whose string helpers it uses): ``expr`` is evaluated by the ntkrs
test with ``stax`` bound to ``ntkrs``; ``nt_expr`` is NT's spelling where it differs. Every analytic
case ends in a readout, so NT's kernels are (N1, N2). Uses only numpy.
"""

import json
import sys

import numpy as np
from nt_graph_reference_inputs import CONCAT, ERF, FANOUT2, LN, PROD, RELU, SUM, dense, parallel, residual, serial

GAP, GSP, FLAT = "stax.GlobalAvgPool()", "stax.GlobalSumPool()", "stax.Flatten()"
GELU = "stax.Gelu()"
NT_TANH = "stax.ElementwiseNumerical(fn=jnp.tanh, deg={deg})"


def conv(n, filt, strides=None, padding=None, w=None, b=None, param=None) -> str:
    args = [str(n), str(tuple(filt))]
    if strides is not None:
        args.append(f"strides={tuple(strides)}")
    if padding is not None:
        args.append(f"padding={padding!r}")
    if w is not None:
        args.append(f"W_std={w}")
    if b is not None:
        args.append(f"b_std={b}")
    if param is not None:
        args.append(f"parameterization={param!r}")
    return "stax.Conv(" + ", ".join(args) + ")"


def pool(kind, window, strides=None, padding=None, normalize_edges=None) -> str:
    args = [str(tuple(window))]
    if strides is not None:
        args.append(f"strides={tuple(strides)}")
    if padding is not None:
        args.append(f"padding={padding!r}")
    if normalize_edges is not None:
        args.append(f"normalize_edges={normalize_edges}")
    return f"stax.{kind}(" + ", ".join(args) + ")"


def cases() -> dict[str, dict]:
    c: dict[str, dict] = {}

    def add(name, expr, note="", inputs="img", **kw):
        assert name not in c, name
        c[name] = {"expr": expr, "inputs": inputs, "note": note, **kw}

    head = dense(1, 1.0, 0.1)
    # --- Flatten readout: NT uses only the covariances of equal positions ------------------
    for pad in ("VALID", "SAME", "CIRCULAR"):
        add(f"flatten/{pad.lower()}_3x3", serial(conv(8, (3, 3), padding=pad, w=1.5, b=0.1), RELU, FLAT, head),
            f"{pad} 3x3 conv, Relu, Flatten")
    add("flatten/same_2x2_even_filter", serial(conv(8, (2, 2), padding="SAME", w=1.5, b=0.1), RELU, FLAT, head),
        "even filter under SAME: lax pads 0 before and 1 after")
    add("flatten/valid_2x3_strides_2_1",
        serial(conv(8, (2, 3), (2, 1), "VALID", 1.4, 0.2), ERF, FLAT, head), "non-square filter, unequal strides")
    add("flatten/circular_3x1_then_1x4",
        serial(conv(8, (3, 1), (1, 2), "CIRCULAR", 1.3), RELU, conv(8, (1, 4), None, "CIRCULAR", 1.2, 0.1), RELU,
               FLAT, head), "two circular convs with one-dimensional filters, stride 2 along W")
    add("flatten/same_4x1_strides_3_2",
        serial(conv(8, (4, 1), (3, 2), "SAME", 1.5, 0.3), GELU, FLAT, head), "even filter, strides 3 and 2, SAME")
    add("flatten/three_convs_same",
        serial(*[conv(8, (3, 3), padding="SAME", w=1.4, b=0.1), RELU] * 3, FLAT, dense(1, 1.4, 0.1)),
        "the issue's Flatten benchmark network (3 x [Conv SAME 3x3, Relu], Flatten, Dense), small")
    add("flatten/filter_equals_input", serial(conv(8, (5, 6), w=1.2, b=0.2), RELU, FLAT, head),
        "a VALID filter as large as the image: one output position")
    add("flatten/on_raw_inputs", serial(FLAT, dense(4, 1.3, 0.2), RELU, head), "Flatten of the inputs, then an MLP")
    add("flatten/dense_mlp_head",
        serial(conv(6, (3, 3), padding="SAME", w=1.5), RELU, FLAT, dense(8, 1.2, 0.1), RELU, head),
        "Dense layers after Flatten")
    add("flatten/no_bias", serial(conv(8, (3, 2), padding="SAME", w=1.5), RELU, conv(8, (2, 2), w=0.9), FLAT,
                                  dense(1)), "no biases anywhere; ends in a Conv before Flatten")

    # --- GlobalAvgPool / GlobalSumPool readouts: full spatial covariances -------------------
    for pad in ("VALID", "SAME", "CIRCULAR"):
        add(f"gap/{pad.lower()}_3x3", serial(conv(8, (3, 3), padding=pad, w=1.5, b=0.1), RELU, GAP, head),
            f"{pad} 3x3 conv, Relu, GlobalAvgPool")
    add("gap/strides_2_2_same", serial(conv(8, (3, 3), (2, 2), "SAME", 1.5, 0.1), RELU, GAP, head), "strides 2")
    add("gap/non_square_unequal_strides",
        serial(conv(8, (2, 3), (1, 2), "VALID", 1.5, 0.1), RELU, conv(8, (3, 1), (2, 1), "CIRCULAR", 1.1), ERF,
               GAP, head), "NT reverses the spatial axes of its covariances at every conv; two convs exercise it")
    add("gap/three_convs_same",
        serial(*[conv(8, (3, 3), padding="SAME", w=1.4, b=0.1), RELU] * 3, GAP, dense(1, 1.4, 0.1)),
        "the issue's GlobalAvgPool benchmark network, small")
    add("gsp/same_3x3", serial(conv(8, (3, 3), padding="SAME", w=1.5, b=0.1), RELU, GSP, head),
        "GlobalSumPool: the sum over all pairs of positions")
    add("gap/dense_per_position",
        serial(conv(8, (3, 3), padding="SAME", w=1.5, b=0.1), RELU, dense(8, 1.3, 0.2), RELU, GAP, head),
        "a Dense on (N, H, W, C) acts on the channels of every position (a 1x1 conv)")
    add("gap/on_raw_inputs", serial(GAP, dense(4, 1.3, 0.2), RELU, head), "GlobalAvgPool of the inputs")
    add("gap/mlp_head", serial(conv(6, (3, 3), padding="SAME", w=1.5), RELU, GAP, dense(8, 1.2, 0.1), RELU, head),
        "Dense layers after GlobalAvgPool")
    add("gap/activation_after_gap", serial(conv(6, (3, 3), padding="SAME", w=1.5, b=0.2), GAP, ERF, head),
        "GlobalAvgPool of a Gaussian layer is Gaussian: an activation may follow")

    # --- local pooling ---------------------------------------------------------------------
    c1 = conv(8, (3, 3), padding="SAME", w=1.5, b=0.1)
    add("avgpool/2x2_valid_flatten", serial(c1, RELU, pool("AvgPool", (2, 2)), FLAT, head), "strides default 1")
    add("avgpool/3x3_s2_same_flatten", serial(c1, RELU, pool("AvgPool", (3, 3), (2, 2), "SAME"), FLAT, head),
        "SAME, normalize_edges=False: divides by 9 at the edges too")
    add("avgpool/3x3_s2_same_normalize_edges",
        serial(c1, RELU, pool("AvgPool", (3, 3), (2, 2), "SAME", True), FLAT, head),
        "normalize_edges=True: divides by the number of in-image positions of each window")
    add("avgpool/2x3_circular_gap", serial(c1, RELU, pool("AvgPool", (2, 3), (1, 2), "CIRCULAR"), GAP, head),
        "circular pooling")
    add("sumpool/2x2_valid_flatten", serial(c1, RELU, pool("SumPool", (2, 2)), FLAT, head), "SumPool")
    add("sumpool/3x2_same_s2_gap", serial(c1, ERF, pool("SumPool", (3, 2), (2, 2), "SAME"), GAP, head),
        "SumPool SAME with strides")
    add("avgpool/myrtle_like",
        serial(conv(8, (3, 3), padding="SAME", w=1.4, b=0.1), RELU, pool("AvgPool", (2, 2), (2, 2)),
               conv(8, (3, 3), padding="SAME", w=1.4, b=0.1), RELU, pool("AvgPool", (2, 2), (1, 1), "SAME"), GAP,
               dense(1, 1.4)), "pooling early (Myrtle-style)")
    add("avgpool/activation_after_pool",
        serial(conv(8, (3, 3), padding="SAME", w=1.5, b=0.1), pool("AvgPool", (2, 2)), RELU, FLAT, head),
        "average pooling of a Gaussian layer is Gaussian: an activation may follow")
    add("avgpool/on_raw_inputs",
        serial(pool("AvgPool", (2, 2), (2, 2)), conv(8, (2, 2), padding="SAME", w=1.5, b=0.1), RELU, FLAT, head),
        "pooling the inputs")

    # --- residual conv blocks -------------------------------------------------------------
    cs = conv(8, (3, 3), padding="SAME", w=1.3, b=0.1)
    add("resnet/conv_block_gap",
        serial(conv(8, (3, 3), padding="SAME", w=1.5, b=0.1), residual(serial(RELU, cs)), RELU, GAP, head),
        "x + Conv(Relu(x)), GlobalAvgPool")
    add("resnet/conv_block_flatten",
        serial(conv(8, (3, 3), padding="SAME", w=1.5, b=0.1), residual(serial(RELU, cs)), RELU, FLAT, head),
        "the same block with a Flatten readout (equal positions only)")
    add("resnet/pre_layernorm_two_blocks",
        serial(conv(8, (3, 3), padding="SAME", w=1.5, b=0.1), residual(serial(LN, RELU, cs)),
               residual(serial(LN, GELU, conv(8, (2, 2), padding="CIRCULAR", w=1.1))), LN, GAP, head),
        "pre-LN (over channels) residual conv blocks")
    add("resnet/projection_shortcut_strided",
        serial(conv(8, (3, 3), padding="SAME", w=1.5, b=0.1), FANOUT2,
               parallel(serial(RELU, conv(8, (3, 3), (2, 2), "SAME", 1.3, 0.1)), conv(8, (1, 1), (2, 2), w=1.0)),
               SUM, RELU, GAP, head), "downsampling block: a strided 1x1 conv on the shortcut")

    # --- LayerNorm ------------------------------------------------------------------------
    add("layernorm/channels_flatten", serial(c1, LN, RELU, FLAT, head), "LayerNorm over channels, per position")
    add("layernorm/hwc_gap", serial(c1, "stax.LayerNorm(axis=(1, 2, 3))", RELU, GAP, head),
        "LayerNorm over (H, W, C): divides by the mean over positions of the variances")
    add("layernorm/wc_eps_gap",
        serial(conv(8, (3, 2), padding="VALID", w=1.5, b=0.1), "stax.LayerNorm(axis=(2, 3), eps=0.3)", ERF, GAP,
               head), "LayerNorm over (W, C) with eps 0.3 after an odd number of convs (NT's reversed axes)")

    # --- parameterisations ---------------------------------------------------------------
    S = "standard"
    add("standard/conv_flatten_dense",
        serial(conv(6, (3, 3), padding="SAME", w=1.5, b=0.1, param=S), RELU, conv(4, (2, 2), w=1.2, b=0.2, param=S),
               RELU, FLAT, dense(1, 1.0, 0.1, S)),
        "standard NTK: C_in·|filter| enters each conv, H·W·C the Dense after Flatten")
    add("standard/conv_gap_dense",
        serial(conv(6, (3, 3), padding="CIRCULAR", w=1.5, b=0.1, param=S), RELU, GAP, dense(3, 1.1, None, S), RELU,
               dense(1, 1.0, 0.1, S)), "standard conv then GlobalAvgPool and a standard MLP head")
    add("standard/mixed_parameterisations",
        serial(conv(6, (2, 3), (2, 1), "SAME", 1.5, 0.1, S), RELU, conv(8, (3, 3), padding="SAME", w=1.2), RELU, GAP,
               dense(1, 1.0, 0.1, S)), "standard and ntk layers in one network")

    # --- activations ----------------------------------------------------------------------
    for name, act in {"Erf": ERF, "Gelu": GELU, "Abs": "stax.Abs()", "Sin": "stax.Sin()",
                      "LeakyRelu": "stax.LeakyRelu(0.2)", "Sign": "stax.Sign()"}.items():
        add(f"activation/{name}_gap", serial(conv(6, (3, 3), padding="SAME", w=1.3, b=0.1), act,
                                              conv(6, (2, 2), w=1.1, b=0.1), act, GAP, head), f"{name} twice")
    add("numerical/Tanh_flatten",
        serial(conv(6, (3, 3), padding="SAME", w=1.2, b=0.1), "stax.Tanh()", conv(6, (2, 2), w=1.1, b=0.1),
               "stax.Tanh()", FLAT, head),
        "NT: ElementwiseNumerical(jnp.tanh) at two degrees (Flatten: NT's quadrature runs on equal positions only)",
        nt_expr=serial(conv(6, (3, 3), padding="SAME", w=1.2, b=0.1), NT_TANH, conv(6, (2, 2), w=1.1, b=0.1), NT_TANH,
                       FLAT, head),
        degrees=[150, 250])

    # --- branches other than sums ----------------------------------------------------------
    add("concat/channels_then_conv_gap",
        serial(conv(6, (3, 3), padding="SAME", w=1.5, b=0.1), FANOUT2,
               parallel(conv(3, (3, 3), padding="SAME", w=1.2), serial(RELU, conv(5, (1, 1), w=1.6, b=0.2))),
               CONCAT, conv(6, (2, 2), padding="SAME", w=1.1), RELU, GAP, head),
        "channel concatenation of widths 3 and 5 (weights 3/8, 5/8) feeding a conv")
    add("prod/conv_branches_flatten",
        serial(conv(6, (3, 3), padding="SAME", w=1.5, b=0.1), FANOUT2,
               parallel(conv(6, (3, 3), padding="SAME", w=1.2), conv(6, (1, 1), w=0.9, b=0.2)), PROD, FLAT, head),
        "elementwise product of two conv branches")
    add("dropout/train_gap", serial(c1, RELU, "stax.Dropout(0.8)", conv(6, (2, 2), w=1.2), RELU, GAP, head),
        "dropout multiplies the (same sample, same position) entries by 1/rate, for k(x1, x1) only")
    add("dropout/train_flatten", serial(c1, RELU, "stax.Dropout(0.6)", FLAT, head), "dropout before Flatten")

    # --- 1-D (N, L, C) ----------------------------------------------------------------------
    def seq(name, expr, note):
        add(f"1d/{name}", expr, note, inputs="seq")

    seq("same3_valid2s2_flatten",
        serial(conv(8, (3,), padding="SAME", w=1.5, b=0.1), RELU, conv(8, (2,), (2,), "VALID", 1.2, 0.1), RELU,
               FLAT, head), "SAME then strided VALID")
    seq("circular4_gap", serial(conv(8, (4,), padding="CIRCULAR", w=1.5, b=0.1), ERF, GAP, head),
        "even circular filter")
    seq("avgpool_same_normalize_edges",
        serial(conv(8, (3,), padding="SAME", w=1.5, b=0.1), RELU, pool("AvgPool", (3,), (2,), "SAME", True), FLAT,
               head), "1-D normalize_edges")
    seq("sumpool_s2_gsp",
        serial(conv(8, (2,), padding="VALID", w=1.5, b=0.1), RELU, pool("SumPool", (2,), (2,)), GSP, head),
        "SumPool and GlobalSumPool")
    seq("resnet_gap",
        serial(conv(8, (3,), padding="SAME", w=1.5, b=0.1),
               residual(serial(RELU, conv(8, (3,), padding="SAME", w=1.2))), RELU, GAP, head), "1-D residual block")
    seq("standard_flatten",
        serial(conv(5, (3,), padding="CIRCULAR", w=1.5, b=0.1, param=S), RELU, FLAT, dense(1, 1.0, 0.1, S)),
        "1-D standard parameterisation")
    return c


def invalid() -> dict[str, dict]:
    v: dict[str, dict] = {}

    def add(name, expr, note, inputs="img", **kw):
        v[name] = {"expr": expr, "inputs": inputs, "note": note, **kw}

    add("filter_larger_than_input_valid_flatten", serial(conv(4, (6, 6)), FLAT, dense(1)),
        "6x6 VALID filter on 5x6 images: NT fails with ZeroDivisionError")
    add("filter_larger_than_input_valid_gap", serial(conv(4, (6, 6)), GAP, dense(1)),
        "NT returns NaN silently (the mean over an empty output)")
    add("pool_window_larger_than_input_valid", serial(conv(4, (1, 1)), pool("AvgPool", (6, 2)), FLAT, dense(1)),
        "NT: ZeroDivisionError")
    add("conv2d_on_sequences", serial(conv(4, (3, 3)), FLAT, dense(1)), "(N, L, C) input to a 2-D conv", inputs="seq")
    add("conv1d_on_images", serial(conv(4, (3,)), FLAT, dense(1)), "(N, H, W, C) input to a 1-D conv")
    add("conv_on_matrix_inputs", serial(conv(4, (3, 3)), FLAT, dense(1)), "(N, d) input to a conv", inputs="dense")
    add("conv_strides_too_short", serial(conv(4, (3, 3), strides=(2,)), FLAT, dense(1)), "strides of length 1 for 2-D")
    add("conv_strides_too_long", serial(conv(4, (3, 3), strides=(1, 1, 1)), FLAT, dense(1)), "strides of length 3")
    add("pool_window_too_short", serial(conv(4, (3, 3)), pool("AvgPool", (2,)), FLAT, dense(1)), "window of length 1")
    add("pool_window_too_long", serial(conv(4, (3, 3)), pool("SumPool", (2, 2, 2)), FLAT, dense(1)), "window length 3")
    add("pool_strides_too_short", serial(conv(4, (3, 3)), pool("AvgPool", (2, 2), (1,)), FLAT, dense(1)),
        "pool strides of length 1")
    add("conv_zero_channels", serial(conv(0, (3, 3)), FLAT, dense(1)), "NT: ZeroDivisionError")
    add("conv_negative_channels", serial(conv(-1, (3, 3)), FLAT, dense(1)), "NT: TypeError from reshape")
    add("conv_zero_filter", serial(conv(4, (0, 3)), FLAT, dense(1)), "a filter of size 0")
    add("conv_zero_stride", serial(conv(4, (3, 3), strides=(0, 1)), FLAT, dense(1)), "a stride of 0")
    add("conv_bad_padding", serial(conv(4, (3, 3), padding="FULL"), FLAT, dense(1)),
        "padding must be VALID, SAME or CIRCULAR")
    add("activation_after_flatten", serial(conv(4, (3, 3)), FLAT, RELU, dense(1)),
        "NT marks Flatten's output non-Gaussian (its kernel is a mean over positions)")
    add("layernorm_without_channels", serial(conv(4, (3, 3)), "stax.LayerNorm(axis=(1, 2))", FLAT, dense(1)),
        "LayerNorm must include the channel axis")
    add("activation_on_raw_images", serial(RELU, conv(4, (3, 3)), FLAT, dense(1)), "inputs are not Gaussian")
    add("fanin_sum_different_spatial_shapes",
        serial(conv(4, (3, 3), padding="SAME"), FANOUT2, parallel(conv(4, (3, 3)), conv(4, (1, 1))), SUM, GAP,
               dense(1)),
        "a VALID 3x3 branch (3x4) and a 1x1 branch (5x6)")
    return v


def finite() -> dict[str, dict]:
    f: dict[str, dict] = {}

    def add(name, expr, seed, note, inputs="img"):
        f[name] = {"expr": expr, "inputs": inputs, "seed": seed, "note": note}

    add("conv_same_flatten",
        serial(conv(4, (3, 3), padding="SAME", w=1.5, b=0.1), RELU, conv(3, (2, 3), (2, 1), "VALID", 1.2), RELU, FLAT,
               dense(3, 1.0, 0.1)), 1, "Conv W of shape (H, W, I, O) (HWIO), b of shape (1, 1, 1, O)")
    add("resnet_avgpool_gap",
        serial(conv(4, (3, 3), padding="SAME", w=1.5, b=0.1),
               residual(serial(RELU, conv(4, (2, 2), padding="CIRCULAR", w=1.3, b=0.2))), RELU,
               pool("AvgPool", (2, 2), (1, 2), "SAME"), GAP, dense(3, 1.0, 0.1)), 2,
        "residual conv block, AvgPool (normalize_edges=False), GlobalAvgPool")
    add("standard_layernorm_gap",
        serial(conv(4, (3, 3), padding="SAME", w=1.5, b=0.1, param="standard"), LN, GELU,
               dense(5, 1.2, 0.1, "standard"), RELU, "stax.GlobalSumPool()", dense(3, 1.0, 0.1, "standard")), 3,
        "standard parameterisation, LayerNorm over channels, a per-position Dense, GlobalSumPool")
    add("seq_circular_sumpool",
        serial(conv(4, (3,), (2,), "CIRCULAR", 1.5, 0.1), ERF, pool("SumPool", (2,), None, "SAME"), FLAT,
               dense(3, 1.0, 0.1)), 4, "1-D: circular strided conv, SumPool SAME, Flatten", inputs="seq")
    return f


def main(path):
    rng = np.random.default_rng(12)
    inputs = {
        "img": {"x1": rng.standard_normal((3, 5, 6, 2)).tolist(), "x2": rng.standard_normal((2, 5, 6, 2)).tolist()},
        "seq": {"x1": rng.standard_normal((3, 7, 2)).tolist(), "x2": rng.standard_normal((2, 7, 2)).tolist()},
        "dense": {"x1": rng.standard_normal((3, 4)).tolist(), "x2": rng.standard_normal((2, 4)).tolist()},
    }
    spec = {"dtype": "float64", "inputs": inputs, "cases": cases(), "invalid": invalid(), "finite": finite()}
    for group in ("cases", "invalid", "finite"):
        for name, case in spec[group].items():
            assert "jnp" not in case["expr"] and "jax" not in case["expr"], (name, "ntkrs expressions use stax only")
    with open(path, "w") as f:
        json.dump(spec, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "nt_conv_input.json")
