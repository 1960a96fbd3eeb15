"""Accuracy of the numerically integrated activations at a given quad_degree.

Worst error |got − want|/(1 + |want|) of ``act.maps`` over variances {0.25, 1, 2.7, 10}² and
correlations {−1, −0.9, −0.3, 0, 0.5, 0.99, 1}, against the independent references of
``tests/reference.py`` (polar quadrature split at the kinks, validated in tests/test_reference.py),
plus the time per ``maps`` call. ::

    python benchmarks/numerical_accuracy.py            # default degree
    python benchmarks/numerical_accuracy.py --degree 24 96
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import ntkrs as nk  # noqa: E402
from reference import phi, reference_maps  # noqa: E402

NAMES = ["Tanh", "Sigmoid", "Softplus", "Silu", "Mish", "Elu", "Selu"]
VARS = (0.25, 1.0, 2.7, 10.0)
RHOS = (-1.0, -0.9, -0.3, 0.0, 0.5, 0.99, 1.0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--degree", type=int, nargs="+", default=[None])
    a = p.parse_args()
    points = [(v1, v2, r * np.sqrt(v1 * v2)) for v1 in VARS for v2 in VARS for r in RHOS]
    want = {n: [reference_maps(phi(n), *pt) for pt in points] for n in NAMES}
    print("| activation | quad_degree | E[φφ] error | E[φ'φ'] error | ms per maps call |")
    print("|---|---|---|---|---|")
    for degree in a.degree:
        for name in NAMES:
            act = getattr(nk, name)(quad_degree=degree)
            t = time.perf_counter()
            got = [act.maps(*pt) for pt in points]
            ms = (time.perf_counter() - t) / len(points) * 1e3
            err = np.array([[abs(float(g[k]) - w[k]) / (1 + abs(w[k])) for k in range(2)]
                            for g, w in zip(got, want[name], strict=True)]).max(axis=0)
            shown = degree if degree is not None else f"{nk._core.DEFAULT_QUAD_DEGREE} (default)"
            print(f"| {name} | {shown} | {err[0]:.1e} | {err[1]:.1e} | {ms:.2f} |", flush=True)


if __name__ == "__main__":
    main()
