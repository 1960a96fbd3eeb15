"""The ``ntkrs`` command line (``python -m ntkrs``), run as a subprocess."""

from __future__ import annotations

import subprocess
import sys

import ntkrs as nk
import numpy as np
import pytest
from ntkrs.__main__ import UsageError, parse_net_spec


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "ntkrs", *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 12)).astype(np.float32)
    y = rng.standard_normal((70, 12)).astype(np.float32)
    np.save(d / "x.npy", x)
    np.save(d / "y.npy", y)
    np.savez(d / "xy.npz", x=x, y=y)
    np.savez(d / "one.npz", data=x)
    np.savetxt(d / "x.csv", x.astype(np.float64), delimiter=",")
    return d, x, y


NET = "relu:3,W_std=1.4,b_std=0.1"


def test_help_for_every_command():
    for cmd in ([], ["kernel"], ["demo"], ["info"]):
        r = run(*cmd, "--help")
        assert r.returncode == 0 and "usage:" in r.stdout, r.stderr
    assert "W_std" in run("kernel", "--help").stdout


def test_info_prints_version_simd_threads():
    r = run("info")
    assert r.returncode == 0 and nk.__version__ in r.stdout and "simd" in r.stdout and "threads" in r.stdout


def test_kernel_to_npy_equals_in_memory(inputs):
    d, x, y = inputs
    net = nk.mlp(3, 512, "relu", W_std=1.4, b_std=0.1)
    r = run("kernel", d / "x.npy", "--net", NET, "--get", "ntk", "--out", d / "K.npy", "--memory-limit", "30MB",
            "--threads", 1, "--progress")
    assert r.returncode == 0, r.stderr
    assert np.array_equal(np.load(d / "K.npy"), net.kernel(x, get="ntk", dtype=np.float32))
    r = run("kernel", d / "xy.npz", "--key", "x", "--y", d / "xy.npz", "--y-key", "y", "--net", NET, "--get",
            "nngp,ntk", "--out", d / "K_{get}.npy", "--dtype", "float64")
    assert r.returncode == 0, r.stderr
    want = net.kernel(x, y, dtype=np.float64)
    assert np.array_equal(np.load(d / "K_nngp.npy"), want.nngp)
    assert np.array_equal(np.load(d / "K_ntk.npy"), want.ntk)
    r = run("kernel", d / "x.csv", "--net", "erf:2,width=16,b_std=none,parameterization=standard", "--out",
            d / "C.npy", "--dtype", "float64")
    assert r.returncode == 0, r.stderr
    want = nk.mlp(2, 16, "erf", parameterization="standard").kernel(x.astype(np.float64), get="ntk")
    assert np.allclose(np.load(d / "C.npy"), want, rtol=1e-12, atol=0)  # the csv round-trips to 18 digits
    r = run("kernel", d / "one.npz", "--net", "gelu:1", "--out", d / "G.npy")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("args, message", [
    (["missing.npy", "--net", NET, "--out", "B.npy"], "no such file"),
    (["x.npy", "--net", "relu", "--out", "B.npy"], "ACTIVATION:DEPTH"),
    (["x.npy", "--net", "relu:x", "--out", "B.npy"], "not an integer"),
    (["x.npy", "--net", "relu:2,depth=3", "--out", "B.npy"], "unknown key"),
    (["x.npy", "--net", "relu:2,W_std=big", "--out", "B.npy"], "not a number"),
    (["x.npy", "--net", "swoosh:2", "--out", "B.npy"], "unknown name"),
    (["x.npy", "--net", "relu:2,W_std=-1", "--out", "B.npy"], "W_std"),
    (["xy.npz", "--net", NET, "--out", "B.npy"], "--key"),
    (["xy.npz", "--key", "z", "--net", NET, "--out", "B.npy"], "no array"),
    (["x.npy", "--y", "bad.npy", "--net", NET, "--out", "B.npy"], "expected (n_samples, n_features)"),
    (["x.npy", "--y", "narrow.npy", "--net", NET, "--out", "B.npy"], "features"),
    (["x.npy", "--net", NET, "--get", "nngp,ntk", "--out", "B.npy"], "{get}"),
    (["x.npy", "--net", NET, "--out", "B.npy", "--memory-limit", "lots"], "cannot read"),
    (["x.npy", "--net", NET, "--out", "B.npy", "--memory-limit", "1MB"], "too small"),
    (["x.npy", "--net", NET, "--out", "nodir/B.npy"], "does not exist"),
    (["x.txt2", "--net", NET, "--out", "B.npy"], "unknown extension"),
])
def test_bad_input_exits_2_with_a_message(inputs, args, message):
    d, x, _ = inputs
    np.save(d / "bad.npy", np.zeros(5))
    np.save(d / "narrow.npy", np.zeros((4, 3)))
    (d / "x.txt2").write_text("1,2\n")
    r = run("kernel", *args, cwd=d)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert message in r.stderr, r.stderr
    assert not (d / "B.npy").exists()


def test_missing_required_arguments_exit_2(inputs):
    d, _, _ = inputs
    r = run("kernel", d / "x.npy", "--out", d / "K.npy")
    assert r.returncode == 2 and "--net" in r.stderr


def test_net_spec_grammar():
    """The core's grammar (shared with the C ABI): defaults filled in, mlp or resnet."""
    assert parse_net_spec("relu:3,W_std=1.4,b_std=0.1") == {
        "kind": "mlp", "activation": "relu", "depth": 3, "width": 512, "W_std": 1.4, "b_std": 0.1, "out_dim": 1,
        "parameterization": "ntk"}
    assert parse_net_spec(" erf : 2 , width=8, out_dim=3, b_std=None, parameterization=standard") == {
        "kind": "mlp", "activation": "erf", "depth": 2, "width": 8, "W_std": 1.0, "b_std": None, "out_dim": 3,
        "parameterization": "standard"}
    assert parse_net_spec("resnet:leaky_relu(0.1):4,layer_norm=pre,width=64") == {
        "kind": "resnet", "activation": "leaky_relu(0.1)", "depth": 4, "width": 64, "W_std": 1.0, "b_std": None,
        "out_dim": 1, "parameterization": "ntk", "layer_norm": "pre"}
    for bad in ("relu:2,W_std", "relu:2,layer_norm=pre", "mlp:relu", "resnet:relu:2,layer_norm=mid"):
        with pytest.raises(UsageError):
            parse_net_spec(bad)


def test_resnet_spec_computes_the_resnet_kernel(inputs):
    """--net resnet:... gives exactly nk.resnet(...)'s kernel."""
    d, x, _ = inputs
    spec = "resnet:gelu:3,layer_norm=post,width=32,W_std=1.2,b_std=0.1"
    r = run("kernel", d / "x.npy", "--net", spec, "--get", "nngp", "--out", d / "R.npy", "--dtype", "float64")
    assert r.returncode == 0, r.stderr
    want = nk.resnet(3, 32, "gelu", W_std=1.2, b_std=0.1, layer_norm="post").kernel(x.astype(np.float64), get="nngp")
    assert np.array_equal(np.load(d / "R.npy"), want)


def test_pickled_npy_is_refused_without_running_it(inputs):
    """An object .npy (a pickle) is a bad input (exit 2): it is never unpickled, so the code a
    pickle can carry never runs."""
    d, _, _ = inputs
    marker = d / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    np.save(d / "evil.npy", np.array([[Payload()]], dtype=object), allow_pickle=True)
    r = run("kernel", d / "evil.npy", "--net", NET, "--out", d / "E.npy")
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "evil.npy" in r.stderr and "allow_pickle" in r.stderr, r.stderr
    assert not marker.exists() and not (d / "E.npy").exists()


def test_out_naming_the_input_file_is_refused(inputs):
    d, _, _ = inputs
    before = (d / "x.npy").read_bytes()
    for extra in ([], ["--y", d / "y.npy"]):
        r = run("kernel", d / "x.npy", *extra, "--net", NET, "--out", d / "x.npy")
        assert r.returncode == 2 and "is the input file X" in r.stderr, r.stderr
    r = run("kernel", d / "x.npy", "--y", d / "y.npy", "--net", NET, "--get", "nngp,ntk", "--out", d / "{get}.npy",
            cwd=d)
    assert r.returncode == 0, r.stderr  # nngp.npy and ntk.npy: neither is an input
    r = run("kernel", "x.npy", "--net", NET, "--out", "./x.npy", cwd=d)
    assert r.returncode == 2 and "is the input file X" in r.stderr, r.stderr
    assert (d / "x.npy").read_bytes() == before


def test_kernel_prints_what_it_wrote_and_the_values_match(inputs):
    """The report names each file, kernel, shape and dtype; the files hold exactly the kernels."""
    d, x, y = inputs
    r = run("kernel", d / "x.npy", "--y", d / "y.npy", "--net", "erf:2,width=32,W_std=1.3,b_std=0.2", "--get",
            "ntk,nngp", "--out", d / "P_{get}.npy", "--dtype", "float64")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert f"{d / 'P_ntk.npy'}: ntk (300, 70) float64" in lines
    assert f"{d / 'P_nngp.npy'}: nngp (300, 70) float64" in lines
    assert lines[-1].startswith("done in ")
    want = nk.mlp(2, 32, "erf", W_std=1.3, b_std=0.2).kernel(x, y, dtype=np.float64)
    assert np.array_equal(np.load(d / "P_ntk.npy"), want.ntk) and np.array_equal(np.load(d / "P_nngp.npy"), want.nngp)


def test_overflow_is_reported_and_leaves_no_file(inputs):
    d, x, _ = inputs
    np.save(d / "big.npy", x * 30)
    r = run("kernel", d / "big.npy", "--net", "exp:2,width=8", "--out", d / "O.npy", "--dtype", "float64")
    assert r.returncode == 2 and "no finite second moment" in r.stderr, (r.returncode, r.stderr)
    assert not (d / "O.npy").exists() and not list(d.glob("O.npy*"))


def test_demo_prints_kernels_that_match_the_library():
    """`ntkrs demo` on a small problem: the printed diagonal means are those of the same kernels
    computed through the library, and the checks it prints hold."""
    r = run("demo", "--n", 200, "--d", 16, "--seed", 3)
    assert r.returncode == 0, r.stderr
    x = np.random.default_rng(3).standard_normal((200, 16))
    k = nk.mlp(3, 512, "relu", W_std=1.5, b_std=0.05).kernel(x)
    assert f"NTK diagonal mean {k.ntk.diagonal().mean():.4f}, NNGP diagonal mean {k.nngp.diagonal().mean():.4f}" \
        in r.stdout, r.stdout
    assert "symmetric=True, finite=True" in r.stdout and "(200, 200)" in r.stdout
