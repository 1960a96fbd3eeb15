"""neural-tangents (NT) as the timing peer of ``benchmarks/conv.py`` (convolutional kernels).

Runs ONLY inside the peer venv made by ``benchmarks/setup_peer_venv.sh`` (default
``/tmp/ntkrs-peer-venv``); it imports ``jax`` and ``neural_tangents``, never ``ntkrs``. One JSON line
on stdout, like ``_nt_peer.py`` (``{"ok": false, "error": ...}`` with exit status 0 on failure)::

    python _nt_peer_conv.py '{"expr": "stax.serial(...)", "shape": [32, 16, 16, 3], "seed": 0,
                              "dtype": "float64", "repeats": 5, "save": "/tmp/nt.npz"}'

builds the network from the stax expression (the same string ``conv.py`` builds with ntkrs), draws
``x = default_rng(seed).standard_normal(shape)``, jits ``kernel_fn(x, None, ("nngp", "ntk"))``,
times the first (compiling) call and ``repeats`` warm calls, and prints::

    {"ok": true, "first_call_s": ..., "warm_times_s": [...], "warm_median_s": ...,
     "peak_rss_mb": ..., "jax": "...", "nt": "..."}

With ``"save"`` the last call's NNGP and NTK are written to that ``.npz`` file (``nngp``, ``ntk``),
for the value check.
"""

from __future__ import annotations

import resource
import statistics
import sys
import time
from typing import Any

from _nt_peer import _import_nt, _versions, serve


def run_timing(spec: dict[str, Any]) -> dict[str, Any]:
    dtype = spec.get("dtype", "float64")
    jax, nt, stax = _import_nt(dtype)
    import jax.numpy as jnp
    import numpy as np

    net = eval(spec["expr"], {"__builtins__": {}, "stax": stax, "jnp": jnp})  # noqa: S307 - our own spec
    kernel_fn = jax.jit(net[2], static_argnames=("get",))
    x = np.random.default_rng(spec.get("seed", 0)).standard_normal(spec["shape"]).astype(dtype)
    xj = jnp.asarray(x)
    t = time.perf_counter()
    out = kernel_fn(xj, None, get=("nngp", "ntk"))
    jax.block_until_ready(out)
    first = time.perf_counter() - t
    times = []
    for _ in range(int(spec.get("repeats", 3))):
        t = time.perf_counter()
        out = kernel_fn(xj, None, get=("nngp", "ntk"))
        jax.block_until_ready(out)
        times.append(time.perf_counter() - t)
    if spec.get("save"):
        np.savez(spec["save"], nngp=np.asarray(out[0]), ntk=np.asarray(out[1]))
    return {
        "ok": True,
        "first_call_s": first,
        "warm_times_s": times,
        "warm_median_s": statistics.median(times) if times else first,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        **_versions(jax, nt),
    }


def run_reference(path: str) -> dict[str, Any]:
    raise ValueError("_nt_peer_conv.py has a timing mode only")


def main(argv: list[str]) -> int:
    return serve(argv, run_timing, run_reference, "_nt_peer_conv.py")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
