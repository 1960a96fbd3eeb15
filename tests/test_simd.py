"""The SIMD level: forced by ``NTKRS_SIMD`` (read at the first computation) or ``set_simd_level``,
reported by ``show_config()``; every level the CPU supports computes the scalar path's kernels.

Each level runs in its own process (the environment variable is read once per process): the
infinite-width kernels of closed-form and numerical activations (the tile pass and the vector
maths), in float64 and float32, and a finite network's outputs and empirical NTK, compared with
the same script under ``NTKRS_SIMD=scalar``. Levels differ only by rounding (fused
multiply-adds), so they agree to a few ulps of the largest entry rather than bitwise.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import ntkrs as nk
import numpy as np
import pytest

LEVELS = nk._core.supported_simd_levels()

SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import ntkrs as nk
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((60, 7)), rng.standard_normal((25, 7))
    out = {}
    for act in ["relu", "leaky_relu(0.1)", "erf", "gelu", "sign", "sin(1, 2, 0.3)", "gaussian(1, -0.5)",
                "rectified_monomial(2)", "tanh"]:
        net = nk.mlp(3, 64, act, W_std=1.3, b_std=0.1)
        k = net.kernel(x, tile_size=16)
        out[act + " nngp"], out[act + " ntk"] = k.nngp, k.ntk
        if act == "tanh":
            continue  # numerical: about a second per call to plan; the tile pass is checked above
        out[act + " ntk(x, y)"] = net.kernel(x, y, get="ntk")
        out[act + " f32"] = net.kernel(x.astype(np.float32), get="ntk", dtype=np.float32)
    finite = nk.mlp(2, 48, "gelu", W_std=1.3, b_std=0.1, out_dim=2)
    p = finite.init(7, seed=1)
    out["apply"] = finite.apply(p, x)
    out["empirical ntk"] = finite.empirical_ntk(p, x)
    out["simd"] = np.array(nk.show_config(print_out=False)["simd"])
    np.savez(sys.argv[1], **out)
    """
)


def run_level(level: str | None, path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("NTKRS_SIMD", None)
    if level is not None:
        env["NTKRS_SIMD"] = level
    return subprocess.run([sys.executable, "-c", SCRIPT, str(path)], env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def scalar(tmp_path_factory):
    path = tmp_path_factory.mktemp("simd") / "scalar.npz"
    r = run_level("scalar", path)
    assert r.returncode == 0, r.stderr[-3000:]
    return dict(np.load(path))


@pytest.mark.parametrize("level", LEVELS[1:] or [pytest.param("avx2", marks=pytest.mark.skip(
    reason="this CPU supports the scalar level only"))])
def test_every_supported_level_computes_the_scalar_kernels(level, scalar, tmp_path):
    """NTKRS_SIMD=<level> is what show_config() reports, and each kernel agrees with the scalar
    path's to 1e-12 (float64) or 1e-5 (float32) of its largest entry."""
    path = tmp_path / "out.npz"
    r = run_level(level.split("+")[0], path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stderr == "", r.stderr
    got = dict(np.load(path))
    assert str(got.pop("simd")) == level
    assert str(scalar["simd"]) == "scalar"
    for name, value in got.items():
        want = scalar[name]
        tol = 1e-5 if "f32" in name else 1e-12
        err = np.abs(value - want).max() / np.abs(want).max()
        assert err <= tol, f"{name} at {level}: {err:.2e} from the scalar path"


@pytest.mark.parametrize("value", ["sse9", "AVX-1024"])
def test_an_unknown_level_is_reported_and_the_best_level_used(value, tmp_path):
    r = run_level(value, tmp_path / "out.npz")
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"NTKRS_SIMD={value} is not one of scalar, avx2, avx512; using {LEVELS[-1]}" in r.stderr
    assert str(np.load(tmp_path / "out.npz")["simd"]) == LEVELS[-1]


@pytest.mark.skipif("avx512" in LEVELS, reason="this CPU supports every level")
def test_an_unsupported_level_is_reported_and_the_best_level_used(tmp_path):
    r = run_level("avx512", tmp_path / "out.npz")
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"does not support avx512; using {LEVELS[-1]}" in r.stderr
    assert str(np.load(tmp_path / "out.npz")["simd"]) == LEVELS[-1]


def test_set_simd_level_forces_a_level_and_refuses_bad_ones():
    """set_simd_level switches the level in this process (show_config reports it, the kernel is
    the scalar one up to rounding); unknown or unsupported names raise ValueError and change
    nothing."""
    x = np.random.default_rng(4).standard_normal((30, 5))
    net = nk.mlp(2, 64, "erf", b_std=0.1)
    before = nk.show_config(print_out=False)["simd"]
    try:
        nk.set_simd_level("scalar")
        assert nk.show_config(print_out=False)["simd"] == "scalar"
        want = net.kernel(x, get="ntk")
        nk.set_simd_level(LEVELS[-1].split("+")[0])
        assert nk.show_config(print_out=False)["simd"] == LEVELS[-1]
        np.testing.assert_allclose(net.kernel(x, get="ntk"), want, rtol=0, atol=1e-12 * np.abs(want).max())
        with pytest.raises(ValueError, match='unknown SIMD level "sse9".*scalar, avx2, avx512'):
            nk.set_simd_level("sse9")
        if "avx512" not in LEVELS:
            with pytest.raises(ValueError, match="does not support avx512"):
                nk.set_simd_level("avx512")
        with pytest.raises(TypeError, match="level"):
            nk.set_simd_level(2)  # type: ignore[arg-type]
        assert nk.show_config(print_out=False)["simd"] == LEVELS[-1]
        assert nk.show_config(print_out=False)["simd_supported"] == ", ".join(LEVELS)
    finally:
        nk.set_simd_level(before.split("+")[0])
