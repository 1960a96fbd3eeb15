"""The C ABI (``libntkrs``, ``rust/capi``) through ctypes and through C and C++ programs built with the
system compiler: results equal the Python API's bit for bit, bad input is an error code with a
message (never a crash), calls from many threads at once agree, progress and cancellation work, and
the committed header is the one cbindgen generates (checked by ``rust/capi/build.rs`` on every
build) with the documented prototypes.
"""

from __future__ import annotations

import ctypes as C
import re
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import ntkrs as nk
import numpy as np
import pytest
from ntkrs.__main__ import build_network

ROOT = Path(__file__).resolve().parent.parent
LIBDIR = ROOT / "target" / "release"
HEADER = ROOT / "rust" / "capi" / "include" / "ntkrs.h"
D = C.POINTER(C.c_double)
F = C.POINTER(C.c_float)
PROGRESS = C.CFUNCTYPE(C.c_int, C.c_uint64, C.c_uint64, C.c_void_p)


class Options(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("threads", C.c_uint32), ("tile_size", C.c_uint32),
                ("progress", PROGRESS), ("progress_user", C.c_void_p), ("cancel", C.POINTER(C.c_int32))]


@pytest.fixture(scope="module")
def lib():
    """Build libntkrs (a no-op when it is up to date) and load it."""
    subprocess.run(["cargo", "build", "--release", "-p", "ntkrs-capi"], cwd=ROOT, check=True)
    lib = C.CDLL(str(LIBDIR / "libntkrs.so"))
    lib.ntkrs_abi_version.restype = C.c_uint32
    lib.ntkrs_version.restype = C.c_char_p
    lib.ntkrs_last_error.restype = C.c_char_p
    lib.ntkrs_simd_level.restype = C.c_char_p
    lib.ntkrs_network_from_spec.argtypes = [C.c_char_p, C.POINTER(C.c_void_p)]
    lib.ntkrs_network_free.argtypes = [C.c_void_p]
    lib.ntkrs_network_free.restype = None
    lib.ntkrs_network_out_dim.argtypes = [C.c_void_p, C.c_size_t, C.POINTER(C.c_size_t)]
    for t, p in (("f64", D), ("f32", F)):
        getattr(lib, f"ntkrs_kernel_{t}").argtypes = [C.c_void_p, p, C.c_size_t, p, C.c_size_t, C.c_size_t, p, p]
        getattr(lib, f"ntkrs_kernel_{t}_ex").argtypes = [C.c_void_p, p, C.c_size_t, p, C.c_size_t, C.c_size_t, p,
                                                         p, C.POINTER(Options)]
        getattr(lib, f"ntkrs_kernel_to_npy_{t}").argtypes = [C.c_void_p, p, C.c_size_t, p, C.c_size_t,
                                                             C.c_size_t, C.c_char_p, C.c_char_p, C.c_uint64,
                                                             C.POINTER(Options)]
    lib.ntkrs_kernel_diagonal_f64.argtypes = [C.c_void_p, D, C.c_size_t, C.c_size_t, D, D, C.POINTER(Options)]
    lib.ntkrs_options_default.argtypes = [C.POINTER(Options)]
    lib.ntkrs_params_init.argtypes = [C.c_void_p, C.c_size_t, C.c_uint64, C.POINTER(C.c_void_p)]
    lib.ntkrs_params_free.argtypes = [C.c_void_p]
    lib.ntkrs_params_free.restype = None
    lib.ntkrs_params_count.argtypes = [C.c_void_p]
    lib.ntkrs_params_count.restype = C.c_size_t
    lib.ntkrs_params_layer.argtypes = [C.c_void_p, C.c_size_t, C.POINTER(D), C.POINTER(C.c_size_t),
                                       C.POINTER(C.c_size_t), C.POINTER(D)]
    lib.ntkrs_apply_f64.argtypes = [C.c_void_p, C.c_void_p, D, C.c_size_t, C.c_size_t, D, C.POINTER(Options)]
    lib.ntkrs_empirical_f64.argtypes = [C.c_void_p, C.c_void_p, D, C.c_size_t, D, C.c_size_t, C.c_size_t, D, D,
                                        C.POINTER(Options)]
    return lib


def network(lib, spec: str) -> C.c_void_p:
    h = C.c_void_p()
    assert lib.ntkrs_network_from_spec(spec.encode(), C.byref(h)) == 0, lib.ntkrs_last_error()
    return h


def ptr(a):
    if a is None:
        return None
    return a.ctypes.data_as(D if a.dtype == np.float64 else F)


def c_kernel(lib, net, x1, x2=None, outputs=("nngp", "ntk"), opts=None):
    t = "f64" if x1.dtype == np.float64 else "f32"
    n2 = len(x1) if x2 is None else len(x2)
    out = {k: np.full((len(x1), n2), np.nan, dtype=x1.dtype) for k in outputs}
    args = [net, ptr(x1), len(x1), ptr(x2), 0 if x2 is None else len(x2), x1.shape[1],
            ptr(out.get("nngp")), ptr(out.get("ntk"))]
    rc = getattr(lib, f"ntkrs_kernel_{t}_ex")(*args, opts) if opts is not None else \
        getattr(lib, f"ntkrs_kernel_{t}")(*args)
    return rc, out


SPECS = ["relu:3,W_std=1.5,b_std=0.1", "resnet:gelu:2,layer_norm=pre,W_std=1.3,b_std=0.1",
         "erf(1, 2, 0):2,parameterization=standard,width=64,b_std=0.2", "tanh:2,W_std=1.2",
         "resnet:leaky_relu(0.2):3,layer_norm=post"]


def test_the_header_has_the_documented_prototypes():
    """The minimal surface with exactly these names (issue 14), in the committed header."""
    text = re.sub(r"\s+", " ", HEADER.read_text())
    for proto in [
        "typedef struct ntkrs_network ntkrs_network;",
        "uint32_t ntkrs_abi_version(void);",
        "int ntkrs_network_from_spec(const char *spec, ntkrs_network **out);",
        "void ntkrs_network_free(ntkrs_network *net);",
        "int ntkrs_kernel_f64(const ntkrs_network *net, const double *x1, size_t n1, const double *x2, size_t n2, "
        "size_t d, double *nngp_out, double *ntk_out);",
        "int ntkrs_kernel_f32(const ntkrs_network *net, const float *x1, size_t n1, const float *x2, size_t n2, "
        "size_t d, float *nngp_out, float *ntk_out);",
        "const char *ntkrs_last_error(void);",
    ]:
        assert proto in text, proto


def test_versions(lib):
    assert lib.ntkrs_abi_version() == 1
    assert lib.ntkrs_version().decode() == nk.__version__
    assert lib.ntkrs_simd_level().decode() == nk._core.simd_level()
    assert lib.ntkrs_last_error() is not None


def test_simd_level_can_be_forced_and_every_level_gives_the_scalar_kernels(lib):
    """ntkrs_set_simd_level forces each level this CPU supports in turn; every level's kernels
    (ReLU: closed form, Tanh: numerical) agree with the scalar path's up to rounding; an unknown or
    NULL name is NTKRS_ERR_ARGUMENT with a message and changes nothing."""
    lib.ntkrs_set_simd_level.argtypes = [C.c_char_p]
    levels = nk._core.supported_simd_levels()
    assert levels[0] == "scalar"
    x = np.random.default_rng(5).standard_normal((30, 6))
    nets = [network(lib, spec) for spec in (SPECS[0], SPECS[3])]
    try:
        results = {}
        for level in levels:
            assert lib.ntkrs_set_simd_level(level.split("+")[0].encode()) == 0, lib.ntkrs_last_error()
            assert lib.ntkrs_simd_level().decode() == level
            results[level] = []
            for net in nets:
                rc, got = c_kernel(lib, net, x)
                assert rc == 0, lib.ntkrs_last_error()
                results[level] += [got["nngp"], got["ntk"]]
        for level in levels[1:]:
            for got, want in zip(results[level], results["scalar"], strict=True):
                np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * np.abs(want).max())
        before = lib.ntkrs_simd_level()
        assert lib.ntkrs_set_simd_level(b"sse9") == 2
        assert "scalar, avx2, avx512" in lib.ntkrs_last_error().decode()
        assert lib.ntkrs_set_simd_level(None) == 1 and lib.ntkrs_simd_level() == before
    finally:
        lib.ntkrs_set_simd_level(levels[-1].split("+")[0].encode())
        for net in nets:
            lib.ntkrs_network_free(net)


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kernels_equal_the_python_api_bit_for_bit(lib, spec, dtype):
    rng = np.random.default_rng(1)
    x1, x2 = rng.standard_normal((40, 7)).astype(dtype), rng.standard_normal((13, 7)).astype(dtype)
    net = network(lib, spec)
    py = build_network(spec)
    try:
        for other in (None, x2):
            rc, got = c_kernel(lib, net, x1, other)
            assert rc == 0, lib.ntkrs_last_error()
            want = py.kernel(x1, other, dtype=dtype)
            assert np.array_equal(got["nngp"], want.nngp) and np.array_equal(got["ntk"], want.ntk)
        rc, got = c_kernel(lib, net, x1, outputs=("ntk",))  # NULL nngp_out: only the NTK
        assert rc == 0 and np.array_equal(got["ntk"], py.kernel(x1, get="ntk", dtype=dtype))
    finally:
        lib.ntkrs_network_free(net)


def test_diagonal_out_dim_and_out_of_core(lib, tmp_path):
    spec = SPECS[1]
    net, py = network(lib, spec), build_network(spec)
    x = np.random.default_rng(2).standard_normal((700, 9))
    nngp, ntk = np.empty(700), np.empty(700)
    assert lib.ntkrs_kernel_diagonal_f64(net, ptr(x), 700, 9, ptr(nngp), ptr(ntk), None) == 0
    want = py.kernel(x, diagonal=True)
    assert np.array_equal(nngp, want.nngp) and np.array_equal(ntk, want.ntk)
    o = C.c_size_t()
    assert lib.ntkrs_network_out_dim(net, 9, C.byref(o)) == 0 and o.value == 1
    path = tmp_path / "K.npy"
    rc = lib.ntkrs_kernel_to_npy_f64(net, ptr(x), 700, None, 0, 9, None, str(path).encode(), 30 << 20, None)
    assert rc == 0, lib.ntkrs_last_error()
    assert np.array_equal(np.load(path), py.kernel(x, get="ntk"))
    rc = lib.ntkrs_kernel_to_npy_f64(net, ptr(x), 700, None, 0, 9, None, str(tmp_path / "nope" / "K.npy").encode(),
                                     0, None)
    assert rc == 7 and b"nope" in lib.ntkrs_last_error()  # NTKRS_ERR_IO
    lib.ntkrs_network_free(net)


@pytest.mark.parametrize("call, code, message", [
    (lambda lib, net, x, out: lib.ntkrs_kernel_f64(None, ptr(x), 4, None, 0, 3, ptr(out), None), 1, "net is NULL"),
    (lambda lib, net, x, out: lib.ntkrs_kernel_f64(net, None, 4, None, 0, 3, ptr(out), None), 1, "x1 is NULL"),
    (lambda lib, net, x, out: lib.ntkrs_kernel_f64(net, ptr(x), 0, None, 0, 3, ptr(out), None), 2, "at least 1"),
    (lambda lib, net, x, out: lib.ntkrs_kernel_f64(net, ptr(x), 4, None, 0, 0, ptr(out), None), 2, "at least 1"),
    (lambda lib, net, x, out: lib.ntkrs_kernel_f64(net, ptr(x), 2**62, None, 0, 8, ptr(out), None), 2, "overflow"),
    (lambda lib, net, x, out: lib.ntkrs_kernel_f64(net, ptr(x), 4, None, 0, 3, None, None), 2, "both are NULL"),
    (lambda lib, net, x, out: lib.ntkrs_kernel_f64(net, ptr(x), 4, None, 3, 3, ptr(out), None), 2, "n2"),
    (lambda lib, net, x, out: lib.ntkrs_kernel_f64(net, ptr(x), 4, ptr(x), 2**61, 3, ptr(out), None), 2,
     "overflow"),
    (lambda lib, net, x, out: lib.ntkrs_network_from_spec(b"relu:x", C.byref(C.c_void_p())), 2, "depth"),
    (lambda lib, net, x, out: lib.ntkrs_network_from_spec(None, C.byref(C.c_void_p())), 1, "spec is NULL"),
    (lambda lib, net, x, out: lib.ntkrs_network_from_spec(b"relu:2", None), 1, "out is NULL"),
    (lambda lib, net, x, out: lib.ntkrs_network_from_spec(b"\xff:2", C.byref(C.c_void_p())), 2, "UTF-8"),
    (lambda lib, net, x, out: lib.ntkrs_kernel_f64_ex(net, ptr(x), 4, None, 0, 3, ptr(out), None,
                                                      C.byref(Options())), 2, "ntkrs_options_default"),
])
def test_bad_input_is_an_error_code_with_a_message(lib, call, code, message):
    net = network(lib, SPECS[0])
    x = np.ones((4, 3))
    out = np.zeros((4, 4))
    assert call(lib, net, x, out) == code
    assert message in lib.ntkrs_last_error().decode()
    x[1, 2] = np.inf
    assert lib.ntkrs_kernel_f64(net, ptr(x), 4, None, 0, 3, ptr(out), None) == 2
    assert "NaN or infinite" in lib.ntkrs_last_error().decode()
    lib.ntkrs_network_free(net)
    lib.ntkrs_network_free(None)  # ignored


def test_an_overflowing_kernel_is_an_error_not_inf(lib):
    net = network(lib, "exp:3,W_std=3")
    x = np.full((3, 2), 30.0)
    rc, _ = c_kernel(lib, net, x)
    assert rc == 5 and "finite" in lib.ntkrs_last_error().decode()  # NTKRS_ERR_NONFINITE


def test_calls_from_many_threads_at_once_agree(lib):
    net = network(lib, SPECS[1])
    x = np.random.default_rng(3).standard_normal((300, 16))
    want = build_network(SPECS[1]).kernel(x)

    def one(_):
        rc, got = c_kernel(lib, net, x)
        return rc, got

    with ThreadPoolExecutor(8) as ex:
        for rc, got in ex.map(one, range(16)):
            assert rc == 0 and np.array_equal(got["ntk"], want.ntk) and np.array_equal(got["nngp"], want.nngp)
    lib.ntkrs_network_free(net)


def test_progress_callback_and_cancel_flag(lib):
    net = network(lib, "relu:10")
    x = np.random.default_rng(4).standard_normal((2500, 64))
    opts = Options()
    assert lib.ntkrs_options_default(C.byref(opts)) == 0 and opts.struct_size == C.sizeof(Options)
    seen = []

    def report(done, total, user):
        seen.append((done, total))
        return 0

    opts.progress = PROGRESS(report)
    rc, _ = c_kernel(lib, net, x, opts=C.byref(opts))
    assert rc == 0 and seen and seen[-1][0] == seen[-1][1] > 0
    opts.progress = PROGRESS(lambda done, total, user: 1)  # asks to stop
    rc, _ = c_kernel(lib, net, x, opts=C.byref(opts))
    assert rc == 6 and "cancel" in lib.ntkrs_last_error().decode()
    flag = C.c_int32(0)
    opts.progress = PROGRESS(report)
    opts.cancel = C.pointer(flag)
    big = np.random.default_rng(5).standard_normal((6000, 64))
    out = np.empty((6000, 6000))
    timer = threading.Timer(0.05, lambda: setattr(flag, "value", 1))
    t = time.perf_counter()
    timer.start()
    rc = lib.ntkrs_kernel_f64_ex(net, ptr(big), 6000, None, 0, 64, None, ptr(out), C.byref(opts))
    # set after 50 ms, seen within 20 ms, honoured within a fraction of a second (a loaded machine)
    assert rc == 6 and time.perf_counter() - t < 1.0
    lib.ntkrs_network_free(net)


def test_finite_network_parameters_apply_and_empirical_kernels(lib):
    spec = "resnet:relu:2,layer_norm=post,width=32,W_std=1.4,b_std=0.1"
    net, py = network(lib, spec), build_network(spec)
    d = 5
    p = C.c_void_p()
    assert lib.ntkrs_params_init(net, d, 7, C.byref(p)) == 0
    want = py.init(d, seed=7)
    assert lib.ntkrs_params_count(p) == len(want)
    for k, (w, b) in enumerate(want):
        wp, bp, n_in, n_out = D(), D(), C.c_size_t(), C.c_size_t()
        assert lib.ntkrs_params_layer(p, k, C.byref(wp), C.byref(n_in), C.byref(n_out), C.byref(bp)) == 0
        assert (n_in.value, n_out.value) == w.shape
        assert np.array_equal(np.ctypeslib.as_array(wp, (w.size,)).reshape(w.shape), w)
        assert np.array_equal(np.ctypeslib.as_array(bp, (b.size,)), b)
    x = np.random.default_rng(6).standard_normal((9, d))
    f = np.empty((9, 1))
    assert lib.ntkrs_apply_f64(net, p, ptr(x), 9, d, ptr(f), None) == 0
    assert np.array_equal(f, py.apply(want, x))
    nngp, ntk = np.empty((9, 9)), np.empty((9, 9))
    assert lib.ntkrs_empirical_f64(net, p, ptr(x), 9, None, 0, d, ptr(nngp), ptr(ntk), None) == 0
    k = py.empirical_kernel(want, x)
    assert np.array_equal(nngp, k.nngp) and np.array_equal(ntk, k.ntk)
    assert lib.ntkrs_empirical_f64(net, p, ptr(x), 9, None, 0, d + 1, ptr(nngp), None, None) == 2  # wrong d
    lib.ntkrs_params_free(p)
    lib.ntkrs_network_free(net)


def _parse(out: str, what: str) -> dict[tuple[int, int], float]:
    return {(int(i), int(j)): float(v) for w, i, j, v in (ln.split() for ln in out.splitlines()
                                                           if ln.startswith(what + " ")) if w == what}


def _compile(args, tmp_path, name):
    exe = tmp_path / name
    subprocess.run([*args, "-o", str(exe)], cwd=ROOT, check=True, capture_output=True, text=True)
    return subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("link", ["shared", "static", "pkg-config"])
def test_the_c_example_compiles_and_matches_python(lib, tmp_path, link):
    cc = shutil.which("cc")
    assert cc, "the system C compiler (cc) is needed"
    inc = ["-I", str(HEADER.parent)]
    if link == "shared":
        args = [cc, "-std=c11", "-Wall", "-Werror", *inc, "examples/c/kernel.c", "-L", str(LIBDIR), "-lntkrs",
                "-lm", f"-Wl,-rpath,{LIBDIR}"]
    elif link == "static":
        args = [cc, "-std=c11", "-Wall", "-Werror", *inc, "examples/c/kernel.c", str(LIBDIR / "libntkrs.a"),
                "-lpthread", "-ldl", "-lm"]
    else:
        pc = (ROOT / "rust/capi/ntkrs.pc.in").read_text()
        pc = pc.replace("@libdir@", str(LIBDIR)).replace("@includedir@", str(HEADER.parent))
        (tmp_path / "ntkrs.pc").write_text(pc.replace("@version@", nk.__version__))
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "ntkrs"], capture_output=True, text=True,
                               check=True, env={"PKG_CONFIG_PATH": str(tmp_path), "PATH": "/usr/bin:/bin"}).stdout
        args = [cc, "examples/c/kernel.c", *flags.split(), "-lm", f"-Wl,-rpath,{LIBDIR}"]
    out = _compile(args, tmp_path, f"kernel-{link}")
    x = np.sin(np.arange(5)[:, None] + 2.0 * np.arange(3)[None, :])
    want = build_network("relu:3,W_std=1.5,b_std=0.1").kernel(x)
    for what in ("nngp", "ntk"):
        got = _parse(out, what)
        assert len(got) == 25
        for (i, j), v in got.items():
            assert v == getattr(want, what)[i, j]  # 17 digits round-trip a double exactly
    assert "nan 2 x1: contains NaN" in out and "null 1 x1 is NULL" in out


def test_the_cpp_example_compiles_and_matches_python(lib, tmp_path):
    cxx = shutil.which("c++")
    assert cxx, "the system C++ compiler is needed"
    out = _compile([cxx, "-std=c++17", "-Wall", "-Werror", "-I", str(HEADER.parent), "examples/cpp/kernel.cpp",
                    "-L", str(LIBDIR), "-lntkrs", f"-Wl,-rpath,{LIBDIR}"], tmp_path, "kernel-cpp")
    x = np.cos(np.arange(4)[:, None] - 0.5 * np.arange(3)[None, :])
    want = nk.resnet(2, 64, "gelu", W_std=1.3, b_std=0.1, layer_norm="pre").kernel(x, get="ntk")
    got = _parse(out, "ntk")
    assert len(got) == 16 and all(v == want[i, j] for (i, j), v in got.items())
    assert "error 2" in out and "layer_norm" in out
