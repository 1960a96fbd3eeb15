"""Cost of ``ntkrs.spectrum``: Mercer eigenvalues (goal: 50 degrees in well under 0.1 s), learning curves,
KARE and empirical spectra, with the floor each is measured against.

For ``mercer`` the floor is the one ``net.kernel`` call on the quadrature nodes that it makes (the rest is
the Gegenbauer recurrence and one matrix–vector product); ``learning_curve`` has no kernel work; the
empirical spectrum's floor is LAPACK's ``eigvalsh`` on the same Gram (values only, on one BLAS thread as
``ntkrs.spectrum`` uses below N = 4000: on a few busy cores OpenBLAS's threads spin against each other and
make the multi-threaded call slower and erratic). Every figure is the
median and range over ``--repeats`` runs, with the load average printed before and after.

    python benchmarks/spectrum.py [--repeats 7] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import ntkrs as nk
import numpy as np
from ntkrs import spectrum as sp


def timeit(fn, repeats: int) -> list[float]:
    fn()  # warm-up (node tables are cached per dim and degree)
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def fmt(ts: list[float]) -> str:
    ms = [1e3 * t for t in ts]
    return f"{statistics.median(ms):.2f} | {min(ms):.2f}–{max(ms):.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=0, help="ntkrs threads (0: one per CPU)")
    args = ap.parse_args()
    nk.set_num_threads(args.threads)
    r = args.repeats
    print(f"ntkrs {nk.__version__}, {nk.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f} at start\n")
    print("| call | median (ms) | min–max (ms) | floor | floor median (ms) | floor min–max (ms) | ratio |")
    print("|---|---|---|---|---|---|---|")
    cases = [("relu", 3, 3, 50), ("relu", 3, 10, 50), ("erf", 3, 100, 50), ("gelu", 5, 784, 50),
             ("relu", 3, 3, 500), ("relu", 3, 2, 2000)]
    for act, depth, dim, degrees in cases:
        net = nk.mlp(depth, 512, act, W_std=1.5, b_std=0.1)
        theta, _ = sp._nodes(dim, degrees)
        t_all = timeit(lambda net=net, dim=dim, degrees=degrees: sp.mercer(net, dim, degrees), r)
        t_k = timeit(lambda net=net, theta=theta: sp._dot_product_kernel(net, np.cos(theta), "ntk"), r)
        print(f"| `mercer(mlp({depth}, {act}), dim={dim}, degrees={degrees})` ({theta.size} nodes) | {fmt(t_all)} | "
              f"kernel on the nodes | {fmt(t_k)} | {statistics.median(t_all) / statistics.median(t_k):.1f}× |")
    net = nk.mlp(3, 512, "relu", W_std=1.5, b_std=0.1)
    spec = sp.mercer_spectrum(net, 10, 12, power=[0, 0.5, 0.3, 0.2])
    n = np.unique(np.round(np.geomspace(1, 1e4, 200)))
    t = timeit(lambda: sp.learning_curve(spec, n, ridge=1e-3, noise=0.1), r)
    print(f"| `learning_curve` (200 sizes, 12 degrees) | {fmt(t)} | – | – | – | – |")
    for size in (1000, 3000):
        x = np.random.default_rng(0).standard_normal((size, 20))
        gram = net.kernel(x, get="ntk")
        y = np.sin(x[:, 0])
        with sp._single_threaded_blas():  # the conditions ntkrs.spectrum runs LAPACK in below N = 4000
            floor = timeit(lambda gram=gram: np.linalg.eigvalsh(gram), max(3, r // 2))
        full = timeit(lambda gram=gram, y=y: sp.empirical_spectrum(gram, y), max(3, r // 2))
        top = timeit(lambda gram=gram, y=y: sp.empirical_spectrum(gram, y, top=50), max(3, r // 2))
        ek = timeit(lambda gram=gram, y=y: sp.kare(gram, y, 1e-3), max(3, r // 2))
        print(f"| `empirical_spectrum(K, y)`, N={size} (vectors too) | {fmt(full)} | eigvalsh | {fmt(floor)} | "
              f"{statistics.median(full) / statistics.median(floor):.1f}× |")
        print(f"| `empirical_spectrum(K, y, top=50)`, N={size} | {fmt(top)} | eigvalsh | {fmt(floor)} | "
              f"{statistics.median(top) / statistics.median(floor):.2f}× |")
        print(f"| `kare(K, y, 1e-3)`, N={size} | {fmt(ek)} | eigvalsh | {fmt(floor)} | "
              f"{statistics.median(ek) / statistics.median(floor):.1f}× |")
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
