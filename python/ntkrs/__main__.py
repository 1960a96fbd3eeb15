"""Command line: ``ntkrs demo`` (or ``python -m ntkrs demo``) and ``ntkrs info``."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def _demo(args: argparse.Namespace) -> int:
    import ntkrs as nk

    cfg = nk.show_config(print_out=False)
    print(f"ntkrs {cfg['version']} · SIMD {cfg['simd']} · {cfg['threads']} threads")
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((args.n, args.d)).astype(args.dtype)
    net = nk.mlp(args.depth, 512, "relu", W_std=1.5, b_std=0.05)
    print(f"data: {args.n} points x {args.d} features ({args.dtype}, standard normal, seed {args.seed})")
    print(f"network: {net}")
    net.kernel(x[:64], dtype=args.dtype)  # warm-up: thread pool and page faults of a small call
    t0 = time.perf_counter()
    k = net.kernel(x, get=("nngp", "ntk"), dtype=args.dtype, progress=args.progress)
    t_kernel = time.perf_counter() - t0
    t0 = time.perf_counter()
    x @ x.T
    t_gram = time.perf_counter() - t0
    gb = (k.nngp.nbytes + k.ntk.nbytes) / 1e9
    print(f"computed NNGP and NTK, each {k.nngp.shape}, {gb:.2f} GB in all, in {t_kernel:.3f} s")
    print(f"numpy's x @ x.T alone (the floor for the input Gram) took {t_gram:.3f} s "
          f"(ratio {t_kernel / t_gram:.2f})")
    sub = k.ntk[:500, :500].astype(np.float64)
    print(f"checks: symmetric={np.array_equal(k.ntk, k.ntk.T)}, finite={bool(np.isfinite(k.ntk).all())}, "
          f"min eigenvalue of a 500x500 block / max = {np.linalg.eigvalsh(sub)[0] / np.linalg.eigvalsh(sub)[-1]:.2e}")
    print(f"NTK diagonal mean {k.ntk.diagonal().mean():.4f}, NNGP diagonal mean {k.nngp.diagonal().mean():.4f}")
    return 0


def _info(args: argparse.Namespace) -> int:
    import ntkrs as nk

    nk.show_config()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ntkrs`` console script."""
    p = argparse.ArgumentParser(prog="ntkrs", description="Infinite-width NNGP and NTK kernels.")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="compute the NNGP and NTK of a depth-3 ReLU network on generated data")
    d.add_argument("--n", type=int, default=4000, help="number of points (default 4000)")
    d.add_argument("--d", type=int, default=784, help="number of features (default 784)")
    d.add_argument("--depth", type=int, default=3, help="hidden layers (default 3)")
    d.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--progress", action="store_true", help="show a progress bar")
    d.set_defaults(func=_demo)
    i = sub.add_parser("info", help="version, SIMD level and threads")
    i.set_defaults(func=_info)
    args = p.parse_args(argv)
    for name in ("n", "d"):
        if getattr(args, name, 1) < 1:
            p.error(f"--{name} must be at least 1")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
