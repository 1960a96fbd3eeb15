"""Long calls behave well: Ctrl-C interrupts them promptly, progress bars work, concurrent
calls from Python threads are safe and deterministic, and the GIL is released meanwhile."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import ntkrs as nk
import numpy as np
import pytest

# A call that takes far longer than the test waits (ReLU, N = 8000, depth 400: ~1.3e10 map
# evaluations); it is interrupted after ~0.5 s, so its length only matters if Ctrl-C fails.
LONG_CALL = textwrap.dedent(
    """
    import time
    import numpy as np
    import ntkrs as nk
    x = np.random.default_rng(0).standard_normal((8000, 64))
    net = nk.mlp(depth=400, width=64, activation="relu", W_std=1.5, b_std=0.05)
    print("started", flush=True)
    t0 = time.perf_counter()
    net.kernel(x, get="nngp")
    print(f"finished after {time.perf_counter() - t0:.1f} s", flush=True)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT delivery to a child is POSIX-specific")
def test_ctrl_c_interrupts_a_long_kernel_call_promptly():
    """SIGINT during a long kernel call ends the process with KeyboardInterrupt within 1 s
    (the specification is 0.2 s; 1 s leaves room for CI noise; the latency is printed)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", LONG_CALL], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        line = proc.stdout.readline()
        assert line.strip() == "started", (line, proc.stderr.read() if proc.poll() is not None else "")
        time.sleep(0.7)  # well inside the Rust computation
        assert proc.poll() is None, "the long call ended before it could be interrupted"
        sent = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("the process ignored SIGINT for 30 s")
        latency = time.perf_counter() - sent
        out, err = proc.stdout.read(), proc.stderr.read()
        print(f"Ctrl-C latency: {latency * 1000:.0f} ms")
        assert "finished" not in out, out
        assert proc.returncode != 0
        assert "KeyboardInterrupt" in err, err[-2000:]
        assert latency < 1.0, f"Ctrl-C took {latency:.3f} s"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


IN_PROCESS_LATENCY = textwrap.dedent(
    """
    import os, signal, threading, time
    import numpy as np
    import ntkrs as nk
    {setup}
    sent = []

    def interrupt():
        time.sleep(0.7)
        sent.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    try:
        {call}
        print("finished")
    except KeyboardInterrupt:
        print(f"latency {{time.perf_counter() - sent[0]:.4f}}")
    """
)

# (setup, call) pairs, each call taking far longer than the 0.7 s before the signal
LONG_CALLS = {
    "kernel": ('x = np.random.default_rng(0).standard_normal((8000, 64)); '
               'net = nk.mlp(depth=400, width=64, activation="relu", W_std=1.5, b_std=0.05)',
               'net.kernel(x, get="nngp")'),
    "conv_kernel": ('x = np.random.default_rng(0).standard_normal((300, 16, 16, 3)); '
                    'c = lambda: nk.stax.Conv(16, (3, 3), padding="SAME", W_std=1.4, b_std=0.1); '
                    'net = nk.stax.serial(c(), nk.stax.Relu(), c(), nk.stax.Relu(), nk.stax.GlobalAvgPool(), '
                    'nk.stax.Dense(1))',
                    'net.kernel(x)'),
    "empirical_ntk": ('x = np.random.default_rng(0).standard_normal((3000, 64)); '
                      'net = nk.mlp(depth=3, width=2048, activation="relu", W_std=1.5, b_std=0.05, out_dim=10); '
                      'p = net.init(64)',
                      'net.empirical_ntk(p, x)'),
    "monte_carlo_kernel": ('x = np.random.default_rng(0).standard_normal((400, 64)); '
                           'net = nk.mlp(depth=3, width=512, activation="erf", out_dim=4)',
                           'net.monte_carlo_kernel(x, n_samples=100000)'),
    "train": ('x = np.random.default_rng(0).standard_normal((500, 64)); y = np.sin(x[:, :1]); '
              'net = nk.mlp(depth=2, width=1024, activation="tanh"); p = net.init(64)',
              'net.train(p, x, y, learning_rate=0.1, steps=10**7, record_every=10**6)'),
}


@pytest.mark.parametrize("call", sorted(LONG_CALLS))
def test_ctrl_c_reaches_python_within_the_specified_fifth_of_a_second(call):
    """From SIGINT to KeyboardInterrupt raised in the caller: ≤ 0.2 s, the specification
    (measured inside the process, so interpreter shutdown and freeing memory do not count),
    for every long call: analytic kernels (dense and convolutional), empirical NTK, Monte Carlo
    kernels, training."""
    setup, body = LONG_CALLS[call]
    code = IN_PROCESS_LATENCY.format(setup=setup, call=body)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.startswith("latency"), (out.stdout, out.stderr[-2000:])
    latency = float(out.stdout.split()[1])
    print(f"{call}: in-process Ctrl-C latency: {latency * 1000:.0f} ms")
    assert latency <= 0.2, f"KeyboardInterrupt came {latency:.3f} s after SIGINT"


# Calls cycled through by the stress test below, each far longer than the moment it is interrupted
# at, so that the signal lands in every phase: start-up and planning, allocation, the input Gram,
# the tile pass, an activation's angle table (Tanh on a sphere), the out-of-core writer and the
# file's sync, the finite-width products, Monte Carlo draws, training steps and parameter draws.
STRESS = textwrap.dedent(
    """
    import os, random, signal, sys, tempfile, threading, time
    import numpy as np
    import ntkrs as nk
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3000, 784))
    s = x / np.linalg.norm(x, axis=1, keepdims=True) * 28.0  # equal norms: Tanh builds its table
    small = rng.standard_normal((400, 64))
    wide = nk.mlp(3, 2048, "relu", W_std=1.5, b_std=0.05, out_dim=10)
    p = wide.init(64)
    out = os.path.join(tempfile.mkdtemp(), "K.npy")
    calls = [
        lambda: nk.mlp(3, 64, "relu", W_std=1.5, b_std=0.05).kernel(x),
        lambda: nk.mlp(200, 64, "erf").kernel(x[:1500], get="nngp"),
        lambda: nk.mlp(3, 64, "tanh").kernel(s[:500]),
        lambda: nk.mlp(3, 64, "relu").kernel(x, get="ntk", out=out, memory_limit="40MB"),
        lambda: wide.empirical_ntk(p, small),
        lambda: nk.mlp(3, 512, "erf", out_dim=4).monte_carlo_kernel(small, n_samples=10**5),
        lambda: nk.mlp(2, 512, "erf").train(nk.mlp(2, 512, "erf").init(64, seed=1), small, np.sin(small[:, :1]),
                                             learning_rate=0.1, steps=10**6),
        lambda: nk.mlp(2, 6000).init(6000),
    ]
    def interrupt(i, delay):  # call calls[i], SIGINT delay s in: the latency (None: it finished)
        sent = []
        def fire():
            time.sleep(delay)
            sent.append(time.perf_counter())
            os.kill(os.getpid(), signal.SIGINT)
        t = threading.Thread(target=fire)
        try:
            t.start()  # inside: with a delay near 0 the signal may land before start() returns
            calls[i]()
            t.join()
            time.sleep(0.5)  # the call was quicker than the delay: the signal lands here instead
            print("finished", i, flush=True)
            return None
        except KeyboardInterrupt:
            lat = time.perf_counter() - sent[0]
            t.join()
            return lat
    random.seed(int(sys.argv[1]))
    latencies = []
    for i in range(int(sys.argv[2])):
        delay = random.uniform(0.0, 0.12)
        lat = interrupt(i % len(calls), delay)
        if lat is not None:
            latencies.append((lat, i % len(calls), delay))
    assert not os.listdir(os.path.dirname(out)), os.listdir(os.path.dirname(out))
    k = nk.mlp(2, 64, "relu").kernel(small[:50])  # the library still works
    want = nk.mlp(2, 64, "relu").kernel(small[:50], threads=1)
    assert np.array_equal(k.ntk, want.ntk)
    for lat, call, delay in latencies:
        print(f"latency {lat:.4f} call {call} delay {delay:.3f}")
        if lat > 0.5:  # the same call, interrupted at the same moment, three more times
            again = [interrupt(call, delay) for _ in range(3)]
            print(f"recheck {call} {delay:.3f}", *(f"{a:.4f}" for a in again if a is not None))
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT delivery is POSIX-specific")
def test_ctrl_c_at_random_moments_of_every_kind_of_call():
    """SIGINT at 48 random moments (0–120 ms into the call, so also during start-up, planning and
    allocation) of eight kinds of long calls, one after the other in one process: every call
    raises KeyboardInterrupt promptly, no partial file is left, and the library keeps working.

    Promptly: 90% within the specified 0.2 s, and every one within 0.5 s (room for a loaded 2-core
    machine). A call slower than 0.5 s is interrupted at the same moment three more times, and
    fails the test only if it is slow again: a phase that does not poll the cancel flag is slow
    every time it is hit, while a stall of the machine itself (seen once in CI on a shared host:
    1.2 s and 0.76 s, in two different kinds of call a second apart) is not."""
    seed = int(time.time()) % 10_000
    out = subprocess.run([sys.executable, "-c", STRESS, str(seed), "48"], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, (seed, out.stdout[-2000:], out.stderr[-3000:])
    rows = [line.split() for line in out.stdout.splitlines() if line.startswith("latency")]
    lat = sorted((float(r[1]), int(r[3]), float(r[5])) for r in rows)
    assert len(lat) >= 40, (seed, out.stdout[-2000:])  # nearly every signal lands inside a call
    p90 = lat[int(0.9 * len(lat))][0]
    print(f"seed {seed}: {len(lat)} interrupts, median {lat[len(lat) // 2][0] * 1e3:.0f} ms, "
          f"90th percentile {p90 * 1e3:.0f} ms, max {lat[-1][0] * 1e3:.0f} ms (call {lat[-1][1]}, "
          f"delay {lat[-1][2]:.3f} s)")
    assert p90 <= 0.2, (seed, lat[-5:])
    rechecks = {(int(r[1]), r[2]): [float(v) for v in r[3:]]
                for r in (line.split() for line in out.stdout.splitlines() if line.startswith("recheck"))}
    for t, call, delay in lat:
        if t > 0.5:
            again = rechecks[(call, f"{delay:.3f}")]
            print(f"call {call} at {delay:.3f} s took {t:.3f} s; again: {again}")
            assert len(again) == 3 and min(again) <= 0.2, (seed, call, delay, t, again)


def test_progress_bar_runs_and_returns_same_result(capfd):
    """progress=True draws a tqdm bar on stderr and returns exactly the plain result."""
    x = np.random.default_rng(1).standard_normal((600, 8))
    net = nk.mlp(depth=3, width=16, activation="erf", W_std=1.3, b_std=0.1)
    plain = net.kernel(x, get=("nngp", "ntk"), tile_size=64)
    capfd.readouterr()
    shown = net.kernel(x, get=("nngp", "ntk"), tile_size=64, progress=True)
    err = capfd.readouterr().err
    assert np.array_equal(shown.nngp, plain.nngp) and np.array_equal(shown.ntk, plain.ntk)
    assert "100%" in err and "|" in err, err[-500:]


def test_progress_callable_sees_monotone_counts_up_to_total():
    """progress=f(done, total) is called with non-decreasing done ≤ total, ending at total."""
    calls = []
    x = np.random.default_rng(2).standard_normal((300, 4))
    net = nk.mlp(depth=2, width=8, activation="relu")
    want = net.kernel(x, get="ntk")
    got = net.kernel(x, get="ntk", tile_size=32, progress=lambda done, total: calls.append((done, total)))
    assert np.array_equal(got, want)
    assert calls, "the progress callable was never called"
    dones = [d for d, _ in calls]
    totals = {t for _, t in calls}
    assert len(totals) == 1 and dones == sorted(dones) and all(0 <= d <= calls[-1][1] for d in dones)
    assert dones[-1] == calls[-1][1]


def test_concurrent_calls_from_four_threads_match_serial_calls():
    """Four Python threads calling kernel() at once get the same results as serial calls."""
    rng = np.random.default_rng(3)
    nets = [
        nk.mlp(depth=3, width=8, activation="relu", W_std=1.5, b_std=0.05),
        nk.mlp(depth=2, width=8, activation="erf", W_std=1.2, b_std=0.1),
        nk.mlp(depth=2, width=8, activation=nk.Tanh(), W_std=1.1, b_std=0.2),
        nk.mlp(depth=4, width=8, activation="gelu", W_std=1.3, b_std=0.0),
    ]
    # the quadrature (Tanh) network is far costlier per entry: it gets fewer rows
    xs = [rng.standard_normal((n, 10)) for n in (400, 400, 60, 400)]
    serial = [n.kernel(x, get=("nngp", "ntk")) for n, x in zip(nets, xs, strict=True)]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(2):
            futures = [pool.submit(n.kernel, x, None, ("nngp", "ntk")) for n, x in zip(nets, xs, strict=True)]
            for f, want in zip(futures, serial, strict=True):
                got = f.result()
                assert np.array_equal(got.nngp, want.nngp) and np.array_equal(got.ntk, want.ntk)


def test_gil_is_released_during_a_long_call():
    """While one thread computes a kernel (≥ 0.3 s), another Python thread keeps running:
    its loop advances at ≥ 20% of its idle rate (0% if the GIL were held throughout).
    The kernel uses one worker thread so a core is free for the counter on 2-core machines."""
    before = nk.get_num_threads()
    nk.set_num_threads(1)
    stop = threading.Event()
    count = [0]

    def counter():
        while not stop.is_set():
            count[0] += 1

    try:
        t = threading.Thread(target=counter, daemon=True)
        t.start()
        time.sleep(0.2)
        c0, t0 = count[0], time.perf_counter()
        time.sleep(0.3)
        idle_rate = (count[0] - c0) / (time.perf_counter() - t0)

        x = np.random.default_rng(4).standard_normal((3000, 16))
        net = nk.mlp(depth=60, width=16, activation="relu", W_std=1.4, b_std=0.1)
        c0, t0 = count[0], time.perf_counter()
        net.kernel(x, get=("nngp", "ntk"))
        elapsed = time.perf_counter() - t0
        during = count[0] - c0
    finally:
        stop.set()
        nk.set_num_threads(before)
    print(f"call {elapsed:.2f} s; counter {during / elapsed:.3g}/s during vs {idle_rate:.3g}/s idle")
    assert elapsed >= 0.3, f"the call took only {elapsed:.3f} s; enlarge it so the test is meaningful"
    assert during >= 0.2 * idle_rate * elapsed, (during, idle_rate, elapsed)


def test_show_config_prints_and_returns_version_simd_threads(capsys):
    """show_config() prints and returns a dict with "version", "simd" and "threads"."""
    cfg = nk.show_config()
    out = capsys.readouterr().out
    assert {"version", "simd", "threads"} <= set(cfg)
    assert cfg["version"] == nk.__version__ and cfg["threads"] == nk.get_num_threads()
    assert str(cfg["version"]) in out and str(cfg["simd"]) in out
