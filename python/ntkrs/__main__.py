"""Command line: ``ntkrs demo``, ``ntkrs info`` and ``ntkrs kernel`` (also ``python -m ntkrs ...``).

``ntkrs kernel X.npy [--y Y.npy] --net SPEC --get ntk --out K.npy`` computes a kernel out of core
into a ``.npy`` file. ``SPEC`` describes an :func:`ntkrs.mlp` or an :func:`ntkrs.resnet` (the
grammar is the Rust core's, shared with the C ABI)::

    SPEC  := [KIND ":"] ACTIVATION ":" DEPTH ("," KEY "=" VALUE)*
    KIND  := mlp (default) | resnet
    ACTIVATION := NAME ["(" NUMBER ("," NUMBER)* ")"]
    KEY   := W_std | b_std | width | out_dim | parameterization | layer_norm

for example ``relu:3,W_std=1.4,b_std=0.1`` (``DEPTH`` hidden layers of ``width`` units, default 512,
each a Dense then the activation, then a Dense of ``out_dim`` units, default 1; ``W_std`` default
1.0, ``b_std`` default none, ``parameterization`` ``ntk`` (default) or ``standard``) or
``resnet:gelu:10,layer_norm=pre`` (``DEPTH`` residual blocks; ``layer_norm`` none, pre or post).
Activation names are the registry's (relu, erf, gelu, tanh, leaky_relu(0.1), ...).

Any other network, convolutional ones included, is given as a neural-tangents ``stax``
expression of ntkrs's layers (``stax`` is :mod:`ntkrs.stax`; only the layer names are in scope)::

    ntkrs kernel images.npy --out K.npy \
        --net 'stax.serial(stax.Conv(64, (3, 3), padding="SAME"), stax.Relu(), stax.Flatten(), stax.Dense(1))'

Image arrays in ``.npy``/``.npz`` files are ``(N, H, W, C)`` (NHWC; ``(N, L, C)`` sequences); flat
rows (``.csv``, or any 2-D array) are reshaped per example by ``--input-shape H,W,C``.

Exit status: 0 on success, 2 for a bad command line, spec or input file, 1 when the computation
fails (an I/O error such as a full disk, or memory), 130 on Ctrl-C. A memory limit too small for one
panel is a bad argument (2).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


class UsageError(Exception):
    """A bad command line, spec or input: exit status 2."""


def parse_net_spec(spec: str) -> dict:
    """Keyword arguments of :func:`ntkrs.mlp` or :func:`ntkrs.resnet` (under ``kind``) from a spec."""
    from . import _core

    try:
        kw = dict(_core.parse_spec(spec))
    except ValueError as e:
        raise UsageError(f"--net {e}") from None
    key, params = kw.pop("activation")
    kw["activation"] = key if not params else f"{key}({', '.join(map(repr, params))})"
    if kw["kind"] == "mlp":
        kw.pop("layer_norm")
    return kw


def build_network(spec: str) -> object:
    """The network of a ``--net`` spec, or of a ``stax`` expression (``stax.serial(...)``)."""
    import ntkrs as nk

    if spec.lstrip().startswith(("stax.", "serial(")):
        from . import stax

        scope = {name: getattr(stax, name) for name in dir(stax) if not name.startswith("_")}
        try:
            net = eval(spec, {"__builtins__": {}, "stax": stax, **scope})  # noqa: S307 - the user's own command line
        except (ValueError, TypeError) as e:
            raise UsageError(f"--net: {e}") from None
        except Exception as e:  # noqa: BLE001 - a syntax error or unknown name in the expression
            raise UsageError(f"--net: cannot evaluate the stax expression {spec!r}: {type(e).__name__}: {e}") from None
        if not isinstance(net, nk.Network):
            net = nk.serial(net)
        return net

    kw = parse_net_spec(spec)
    kind = kw.pop("kind")
    return nk.resnet(**kw) if kind == "resnet" else nk.mlp(**kw)


def load_matrix(path: str, key: str | None, name: str) -> np.ndarray:
    """A 2-D array from ``.npy`` (no pickles), ``.npz`` (its only array or ``key``) or ``.csv``."""
    if not os.path.exists(path):
        raise UsageError(f"{name}: no such file {path!r}")
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".npy":
            a = np.load(path, allow_pickle=False)
        elif ext == ".npz":
            with np.load(path, allow_pickle=False) as z:
                keys = list(z.keys())
                if key is None:
                    if len(keys) != 1:
                        raise UsageError(f"{name}: {path} holds {len(keys)} arrays {keys}; choose one with --key")
                    key = keys[0]
                if key not in keys:
                    raise UsageError(f"{name}: {path} has no array {key!r}; it holds {keys}")
                a = z[key]
        elif ext in (".csv", ".txt"):
            a = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64)
        else:
            raise UsageError(f"{name}: {path}: unknown extension {ext!r}; use .npy, .npz or .csv")
    except UsageError:
        raise
    except (ValueError, OSError) as e:
        raise UsageError(f"{name}: cannot read {path}: {e}") from None
    if not 2 <= a.ndim <= 5:
        raise UsageError(f"{name}: {path} holds an array of shape {a.shape}; expected (n_samples, n_features), "
                         "or (N, H, W, C) images / (N, L, C) sequences")
    if a.dtype.kind not in "biuf":
        raise UsageError(f"{name}: {path} holds {a.dtype} values; expected numbers")
    return a


def _kernel(args: argparse.Namespace) -> int:
    import ntkrs as nk

    if args.threads is not None:
        if args.threads < 0:
            raise UsageError(f"--threads must be ≥ 0, got {args.threads}")
        nk.set_num_threads(args.threads)
    names = tuple(g.strip() for g in args.get.split(","))
    if len(names) == 2 and "{get}" not in args.out:
        raise UsageError(f"--get {args.get} writes two kernels: put {{get}} in --out, e.g. --out 'K_{{get}}.npy'")
    try:
        net = build_network(args.net)
        limit = None if args.memory_limit is None else nk.out_of_core.parse_memory_limit(args.memory_limit)
    except (ValueError, TypeError) as e:
        raise UsageError(str(e)) from None
    if args.input_shape is not None:
        try:
            shape = tuple(int(v) for v in args.input_shape.replace("x", ",").split(","))
            net = net.with_input_shape(shape)
        except ValueError as e:
            raise UsageError(f"--input-shape: {e}; expected sizes such as 28,28,1") from None
    x = load_matrix(args.x, args.key, "X")
    y = None if args.y is None else load_matrix(args.y, args.y_key, "--y")
    outs = {g: args.out.replace("{get}", g) for g in names}
    for path in outs.values():
        for arg, src in (("X", args.x), ("--y", args.y)):
            if src is not None and os.path.exists(path) and os.path.samefile(path, src):
                raise UsageError(f"--out {path} is the input file {arg}; write the kernel to another file")
    out = outs[names[0]] if len(names) == 1 else outs
    t0 = time.perf_counter()
    try:
        net.kernel(x, y, get=names if len(names) > 1 else names[0], dtype=args.dtype, out=out,
                   memory_limit=limit, progress=args.progress)
    except (ValueError, TypeError, FileNotFoundError) as e:
        raise UsageError(str(e)) from None
    n2 = x.shape[0] if y is None else y.shape[0]
    for g, path in outs.items():
        print(f"{path}: {g} ({x.shape[0]}, {n2}) {args.dtype}")
    print(f"done in {time.perf_counter() - t0:.2f} s")
    return 0


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
    k = sub.add_parser(
        "kernel", help="compute a kernel into a .npy file, out of core",
        description="Compute the NNGP and/or NTK of an MLP between the rows of X (and Y) into .npy files, "
                    "row panel by row panel within --memory-limit. The files open with "
                    "np.load(path, mmap_mode='r').",
        epilog="SPEC: ACTIVATION:DEPTH[,KEY=VALUE...] with KEY one of W_std, b_std, width, out_dim, "
               "parameterization; e.g. 'relu:3,W_std=1.4,b_std=0.1'. Inputs: .npy, .npz (--key), .csv. "
               "Exit status: 0 ok, 2 bad arguments or inputs, 1 computation failed, 130 Ctrl-C.")
    k.add_argument("x", metavar="X", help="inputs (n, d), or (N, H, W, C) images: .npy, .npz or .csv")
    k.add_argument("--input-shape", metavar="H,W,C",
                   help="the shape of one example when X holds flat rows (convolutional networks)")
    k.add_argument("--y", help="second inputs (m, d); default: X itself (symmetric kernel)")
    k.add_argument("--key", help="array name inside X when it is an .npz with several arrays")
    k.add_argument("--y-key", help="array name inside --y when it is an .npz with several arrays")
    k.add_argument("--net", required=True, metavar="SPEC",
                   help="network, e.g. 'relu:3,W_std=1.4,b_std=0.1', or a stax expression 'stax.serial(...)'")
    k.add_argument("--get", default="ntk", choices=["ntk", "nngp", "nngp,ntk", "ntk,nngp"],
                   help="kernel(s) to compute (default ntk)")
    k.add_argument("--out", required=True, help="output .npy path ({get} is replaced by the kernel's name)")
    k.add_argument("--dtype", choices=["float32", "float64"], default="float32", help="default float32")
    k.add_argument("--memory-limit", help="bytes for buffers, e.g. 2GB or 512MiB (default 1GiB)")
    k.add_argument("--threads", type=int, help="worker threads (default: one per core)")
    k.add_argument("--progress", action="store_true", help="show a progress bar")
    k.set_defaults(func=_kernel)
    args = p.parse_args(argv)
    for name in ("n", "d"):
        if getattr(args, name, 1) < 1:
            p.error(f"--{name} must be at least 1")
    try:
        return args.func(args)
    except UsageError as e:
        print(f"ntkrs {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ntkrs {args.command}: interrupted", file=sys.stderr)
        return 130
    except (OSError, MemoryError, ValueError) as e:
        print(f"ntkrs {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
