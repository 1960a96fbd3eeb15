"""Out-of-core kernels: ``net.kernel(..., out=...)`` writes .npy files (or memmaps) panel by panel
within ``memory_limit``; the values are those of the in-memory kernel, bit for bit (same Gram panels,
same per-entry arithmetic), for any N."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import ntkrs as nk
import numpy as np
import pytest

# scratch reserve of the core plus a little: the smallest limits that still allow a few rows
RESERVE = nk._core.reserve_bytes()


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1037, 24))  # N prime-ish: no divisibility by panels or tiles
    y = rng.standard_normal((301, 24))
    net = nk.mlp(depth=3, width=64, activation="relu", W_std=1.4, b_std=0.1)
    return net, x, y


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("extra, panels", [(2_800_000, 5), (5_000_000, 3), (1 << 28, 1)])
def test_symmetric_file_equals_in_memory_kernel(tmp_path, data, dtype, extra, panels):
    net, x, _ = data
    extra = extra * np.dtype(dtype).itemsize // 4
    want = net.kernel(x, get=("nngp", "ntk"), dtype=dtype)
    stats: dict = {}
    got = net.kernel(x, get=("nngp", "ntk"), dtype=dtype, out={"nngp": tmp_path / "n.npy", "ntk": tmp_path / "t.npy"},
                     memory_limit=RESERVE + extra, stats=stats)
    assert isinstance(got.ntk, np.memmap) and got.ntk.dtype == dtype and got.ntk.shape == (1037, 1037)
    assert np.array_equal(got.nngp, want.nngp) and np.array_equal(got.ntk, want.ntk)
    assert np.array_equal(np.load(tmp_path / "t.npy"), want.ntk)
    assert sorted(os.listdir(tmp_path)) == ["n.npy", "t.npy"]  # no .partial left
    assert stats["panels"] >= 1 and stats["bytes_written"] >= 2 * 1037 * 1037 * np.dtype(dtype).itemsize
    assert stats["panels"] == panels, stats


def test_cross_kernel_and_tuple_out(tmp_path, data):
    net, x, y = data
    want = net.kernel(x, y, get=("ntk", "nngp"))
    got = net.kernel(x, y, get=("ntk", "nngp"), out=(str(tmp_path / "t.npy"), str(tmp_path / "n.npy")),
                     memory_limit=RESERVE + 1_500_000)
    assert got._fields == ("ntk", "nngp")
    assert np.array_equal(got.ntk, want.ntk) and np.array_equal(got.nngp, want.nngp)
    single = net.kernel(x, y, get="ntk", out=tmp_path / "s.npy", memory_limit="64MB")
    assert np.array_equal(single, want.ntk)


def test_memmap_targets(tmp_path, data):
    net, x, y = data
    want = net.kernel(x, get="ntk", dtype=np.float32)
    mm = np.lib.format.open_memmap(tmp_path / "m.npy", mode="w+", dtype=np.float32, shape=(1037, 1037))
    got = net.kernel(x, get="ntk", dtype=np.float32, out=mm, memory_limit=RESERVE + 1_500_000)
    assert got is mm and np.array_equal(mm, want)
    mm.flush()
    del mm, got
    assert np.array_equal(np.load(tmp_path / "m.npy"), want)
    plain = np.empty((1037, 301))
    assert np.array_equal(net.kernel(x, y, get="ntk", out=plain), net.kernel(x, y, get="ntk"))


def test_bad_out_arguments(tmp_path, data):
    net, x, y = data
    with pytest.raises(ValueError, match="two kernels"):
        net.kernel(x, get=("nngp", "ntk"), out=tmp_path / "k.npy")
    with pytest.raises(ValueError, match="keys"):
        net.kernel(x, get=("nngp", "ntk"), out={"ntk": tmp_path / "k.npy"})
    with pytest.raises(ValueError, match="different files"):
        net.kernel(x, get=("nngp", "ntk"), out=(tmp_path / "k.npy", tmp_path / "k.npy"))
    with pytest.raises(ValueError, match="diagonal"):
        net.kernel(x, get="ntk", diagonal=True, out=tmp_path / "k.npy")
    with pytest.raises(ValueError, match="memory_limit: applies"):
        net.kernel(x, get="ntk", memory_limit="1GB")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        net.kernel(x, get="ntk", out=tmp_path / "nope" / "k.npy")
    with pytest.raises(ValueError, match="shape"):
        net.kernel(x, y, get="ntk", out=np.empty((1037, 300)))
    with pytest.raises(ValueError, match="float32"):
        net.kernel(x, get="ntk", dtype=np.float32, out=np.empty((1037, 1037)))
    ro = np.lib.format.open_memmap(tmp_path / "ro.npy", mode="w+", dtype=np.float64, shape=(1037, 1037))
    del ro
    with pytest.raises(ValueError, match="read-only"):
        net.kernel(x, get="ntk", out=np.load(tmp_path / "ro.npy", mmap_mode="r"))
    with pytest.raises(TypeError, match="out"):
        net.kernel(x, get="ntk", out=42)
    assert os.listdir(tmp_path) == ["ro.npy"]


def test_out_naming_an_input_is_refused(tmp_path, data):
    """Writing the kernel over its own inputs is refused before any work: a path that is the file
    an input maps, an array sharing memory with an input, or the same file for both kernels."""
    net, x, y = data
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    xm = np.load(tmp_path / "x.npy", mmap_mode="r")
    ym = np.load(tmp_path / "y.npy", mmap_mode="r")
    before = (tmp_path / "x.npy").read_bytes()
    with pytest.raises(ValueError, match="is the file x1 is read from"):
        net.kernel(xm, get="ntk", out=tmp_path / "x.npy")
    with pytest.raises(ValueError, match="is the file x1 is read from"):
        net.kernel(xm[:301], get="ntk", out=str(tmp_path / "x.npy"))  # a view of the memmap
    with pytest.raises(ValueError, match="is the file x2 is read from"):
        net.kernel(xm, ym, get=("nngp", "ntk"), out={"nngp": tmp_path / "n.npy", "ntk": tmp_path / "y.npy"})
    os.link(tmp_path / "x.npy", tmp_path / "alias.npy")  # another name of the same file
    with pytest.raises(ValueError, match="is the file x1 is read from"):
        net.kernel(xm, get="ntk", out=tmp_path / "alias.npy")
    with pytest.raises(ValueError, match="two different files"):
        net.kernel(x, get=("nngp", "ntk"), out=(tmp_path / "x.npy", tmp_path / "alias.npy"))
    big = np.zeros((1037, 1037))
    with pytest.raises(ValueError, match="shares memory with x1"):
        net.kernel(big[:, :24], get="ntk", out=big)
    with pytest.raises(ValueError, match="two different arrays"):
        net.kernel(x, get=("nngp", "ntk"), out=(big, big))
    assert (tmp_path / "x.npy").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["alias.npy", "x.npy", "y.npy"]
    # reading inputs from one file and writing the kernel to another is fine
    assert np.array_equal(net.kernel(xm, ym, get="ntk", out=tmp_path / "k.npy"), net.kernel(x, y, get="ntk"))


def test_existing_files_are_never_clobbered(tmp_path, data):
    """The temporary file has a fresh name (created exclusively): a user's K.npy.partial survives,
    and K.npy is replaced only by the complete kernel."""
    net, x, _ = data
    (tmp_path / "K.npy.partial").write_bytes(b"mine")
    (tmp_path / "K.npy").write_bytes(b"old")
    got = net.kernel(x, get="ntk", out=tmp_path / "K.npy", memory_limit=RESERVE + 2_800_000)
    assert np.array_equal(got, net.kernel(x, get="ntk"))
    assert (tmp_path / "K.npy.partial").read_bytes() == b"mine"
    assert sorted(os.listdir(tmp_path)) == ["K.npy", "K.npy.partial"]


def test_page_release_is_refused_for_ordinary_memory(data):
    """The core hands written pages back to the OS only inside shared file mappings: asking it to
    release the pages of a plain array (through the private binding) must not lose any value.
    Several panels, so the symmetric kernel's lower part is read back from what was written."""
    net, x, _ = data
    want = net.kernel(x, get="ntk")
    plain = np.zeros((1037, 1037))
    stats = net._net.kernel_to(x, None, False, True, [plain], [True], RESERVE + 5_000_000)
    assert stats["panels"] > 1
    assert np.array_equal(plain, want)


def test_overflow_in_the_middle_of_an_out_of_core_run_removes_the_file(tmp_path):
    """The last rows are 1e4 times larger: in float32 the first two 256-row panels are finite, the
    last overflows. The call raises NonFiniteError and leaves no file behind."""
    x = np.random.default_rng(5).standard_normal((600, 8))
    x[512:] *= 1e4
    net = nk.mlp(20, 64, "relu", W_std=8.0)
    assert np.isfinite(net.kernel(x[:512], x, get="ntk", dtype=np.float32)).all()  # panels 1 and 2
    calls = []
    with pytest.raises(nk.NonFiniteError, match="non-finite entries in float32"):
        net.kernel(x, get="ntk", dtype=np.float32, out=tmp_path / "K.npy", memory_limit=RESERVE + 2_000_000,
                   progress=lambda d, t: calls.append((d, t)))
    assert not os.listdir(tmp_path)
    assert all(d < t for d, t in calls), calls  # a failed call never reports completion


@pytest.mark.parametrize("limit, err, match", [
    ("2 XB", ValueError, "cannot read"), ("", ValueError, "cannot read"), (-5, ValueError, "positive"),
    (0, ValueError, "positive"), (1.5e9, TypeError, "memory_limit"), (True, TypeError, "bool"),
    ("1MB", ValueError, "too small"), (RESERVE, ValueError, "too small"),
])
def test_memory_limit_errors(tmp_path, data, limit, err, match):
    net, x, _ = data
    with pytest.raises(err, match=match):
        net.kernel(x, get="ntk", out=tmp_path / "k.npy", memory_limit=limit)
    assert not os.listdir(tmp_path)


def test_huge_memory_limit_is_a_ceiling(tmp_path, data):
    """A limit far above the machine's memory plans within what is available instead."""
    net, x, _ = data
    stats: dict = {}
    got = net.kernel(x, get="ntk", out=tmp_path / "k.npy", memory_limit="100TB", stats=stats)
    assert np.array_equal(got, net.kernel(x, get="ntk"))
    assert stats["panels"] == 1 and stats["buffer_bytes"] <= 1037 * 1037 * 8


def test_memory_limit_units():
    from ntkrs.stax import parse_memory_limit

    assert parse_memory_limit("2GB") == 2_000_000_000
    assert parse_memory_limit("512MiB") == 512 * 2**20
    assert parse_memory_limit("1.5 GiB") == 3 * 2**29
    assert parse_memory_limit(12345) == 12345


def test_progress_reaches_total(tmp_path, data):
    net, x, _ = data
    calls = []
    net.kernel(x, get="ntk", out=tmp_path / "k.npy", memory_limit=RESERVE + 2_800_000,
               progress=lambda d, t: calls.append((d, t)))
    assert calls and calls[-1][0] == calls[-1][1] and [d for d, _ in calls] == sorted(d for d, _ in calls)


# A long out-of-core call interrupted by SIGINT: KeyboardInterrupt, and no file that looks complete.
INTERRUPTED = textwrap.dedent(
    """
    import os, sys, numpy as np, ntkrs as nk
    out = sys.argv[1]
    x = np.random.default_rng(0).standard_normal((6000, 64))
    net = nk.mlp(depth=300, width=64, activation="relu", W_std=1.5, b_std=0.05)
    print("started", flush=True)
    try:
        net.kernel(x, get="ntk", out=out, memory_limit="40MB")
        print("finished", flush=True)
    except KeyboardInterrupt:
        print("interrupted", sorted(os.listdir(os.path.dirname(out))), flush=True)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT delivery to a child is POSIX-specific")
def test_ctrl_c_leaves_no_complete_looking_file(tmp_path):
    out = tmp_path / "K.npy"
    proc = subprocess.Popen([sys.executable, "-c", INTERRUPTED, str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "started"
        time.sleep(1.0)
        partial = [p.name for p in tmp_path.iterdir()]
        assert len(partial) == 1 and partial[0].startswith("K.npy.ntkrs-") and partial[0].endswith(".partial")
        assert not out.exists()
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert stdout.strip() == "interrupted []", (stdout, stderr[-2000:])
    assert not os.listdir(tmp_path)


# Peak RSS of an out-of-core call in a fresh process: the growth over the process's resident set
# just before the call (VmHWM reset through /proc/self/clear_refs) stays under the memory limit.
RSS_CHILD = textwrap.dedent(
    """
    import sys, numpy as np, ntkrs as nk
    kind, out, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
    n = 6000
    x = np.random.default_rng(0).standard_normal((n, 32)).astype(np.float32)
    net = nk.mlp(depth=3, width=64, activation="relu", W_std=1.4, b_std=0.1)
    net.kernel(x[:300], get="ntk", dtype=np.float32)  # warm-up: pool threads, code pages
    target = out
    if kind == "memmap":
        target = np.lib.format.open_memmap(out, mode="w+", dtype=np.float32, shape=(n, n))
    def kb(field):
        for line in open("/proc/self/status"):
            if line.startswith(field):
                return int(line.split()[1])
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    before = kb("VmRSS")
    net.kernel(x, get=("nngp", "ntk"), dtype=np.float32, out={"nngp": out + ".n.npy", "ntk": target},
               memory_limit=limit)
    print((kb("VmHWM") - before) * 1024)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM and clear_refs are Linux-specific")
@pytest.mark.parametrize("kind", ["file", "memmap"])
def test_peak_rss_stays_under_the_limit(tmp_path, kind):
    """Two 6000² float32 kernels (288 MB) computed within a 48 MB limit (file pages written with
    pwrite are page cache, not RSS; a memmap's written pages are released as it goes)."""
    limit = 48 * 10**6
    out = str(tmp_path / "k.npy")
    r = subprocess.run([sys.executable, "-c", RSS_CHILD, kind, out, str(limit)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    growth = int(r.stdout.split()[-1])
    print(f"{kind}: peak RSS growth {growth / 1e6:.1f} MB for a limit of {limit / 1e6:.0f} MB")
    assert growth < limit, growth
    x = np.random.default_rng(0).standard_normal((6000, 32)).astype(np.float32)
    net = nk.mlp(depth=3, width=64, activation="relu", W_std=1.4, b_std=0.1)
    assert np.array_equal(np.load(out), net.kernel(x, get="ntk", dtype=np.float32))
