"""Reproduce Figure 1 of Jacot, Gabriel and Hongler (2018): convergence of the NTK in width.

Depth-4 ReLU networks (2 → n → n → n → 1, β = 0.1, NTK parameterisation), ``--inits`` random
initialisations per width. For each, the empirical NTK Θ((1, 0), (cos γ, sin γ)) on ``--angles``
angles γ ∈ [−π, π] at initialisation and after ``--steps`` steps of full-batch gradient descent
(learning rate ``--lr``) on f*(x) = x₁x₂ at ``--n-train`` random N(0, I₂) inputs, against the
infinite-width limit ``net.kernel``. Saves the figure (``--out``) and the numbers (``--json``) and
prints the deviations from the limit and the timing.

    python examples/jacot_fig1.py                                  # the paper's scale (slow: see below)
    python examples/jacot_fig1.py --widths 500 2000 --out docs/jacot_fig1.png --json jacot_fig1.json
    python examples/jacot_fig1.py --widths 10000 --inits 2 --json wide.json      # then join the runs:
    python examples/jacot_fig1.py --widths 10000 --inits 3 --first-init 2 --json wide2.json
    python examples/jacot_fig1.py --from-json jacot_fig1.json wide.json wide2.json --out docs/jacot_fig1.png

Cost: one gradient step of a width-n network is a few passes over its 2n² hidden weights, so it is
memory-bound for large n: 1.6–1.8 s per step at n = 10,000 in float32 on a loaded 2-core machine,
i.e. ~6 min per initialisation and ~1 h for the paper's 10; n = 500 takes half a second.
The computation is ``ntkrs.experiments.jacot_fig1``; this script only parses arguments and plots.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence

import ntkrs as nk
import numpy as np
from ntkrs.experiments import JacotFig1, jacot_fig1, plot_jacot_fig1


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--widths", type=int, nargs="+", default=[500, 10_000], help="hidden widths n")
    p.add_argument("--inits", type=int, default=10, help="random initialisations per width")
    p.add_argument("--steps", type=int, default=200, help="gradient-descent steps")
    p.add_argument("--lr", type=float, default=1.0, help="learning rate")
    p.add_argument("--n-train", type=int, default=4, help="training points, drawn from N(0, I_2)")
    p.add_argument("--angles", type=int, default=101, help="angles γ in [−π, π]")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--seed", type=int, default=0, help="seed of the training set and the first initialisation")
    p.add_argument("--first-init", type=int, default=0,
                   help="index of the first initialisation (seed + first-init + k), to add initialisations to a run")
    p.add_argument("--threads", type=int, default=None, help="ntkrs threads; None: all cores")
    p.add_argument("--out", default="jacot_fig1.png", help="PNG to write")
    p.add_argument("--dpi", type=int, default=120, help="resolution of the PNG")
    p.add_argument("--json", default=None, help="also write the arrays and the summary to this JSON file")
    p.add_argument("--from-json", nargs="+", default=None, metavar="FILE",
                   help="compute nothing: join the runs saved in these --json files (e.g. a slow wide run with "
                        "fewer initialisations) and plot them")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads is not None:
        nk.set_num_threads(args.threads)
    start = time.perf_counter()
    if args.from_json:
        runs = []
        for name in args.from_json:
            with open(name) as fh:
                runs.append(JacotFig1.from_json(json.load(fh)))
        result = JacotFig1.concat(runs)
    else:
        result = jacot_fig1(widths=args.widths, inits=args.inits, steps=args.steps, learning_rate=args.lr,
                            n_train=args.n_train, angles=args.angles, dtype=np.dtype(args.dtype), seed=args.seed,
                            first_init=args.first_init,
                            log=lambda line: print(line, flush=True))
    total = time.perf_counter() - start
    summary = result.summary()
    print(f"{'width':>7} {'inits':>5} {'dev t=0':>9} {'dev t=T':>9} {'moved':>9} {'mean dev':>9} {'loss 0':>9} "
          f"{'loss T':>9} {'seconds':>8}")
    for width, s in summary.items():
        print(f"{width:>7} {s['inits']:>5} {s['dev_init']:>9.4f} {s['dev_trained']:>9.4f} {s['moved']:>9.4f} "
              f"{s['dev_mean_init']:>9.4f} {s['loss_init']:>9.4f} {s['loss_trained']:>9.2e} {s['seconds']:>8.1f}")
    if not args.from_json:
        print(f"total {total:.1f} s ({nk.get_num_threads()} threads, {args.dtype})")

    import matplotlib

    matplotlib.use("Agg")
    plot_jacot_fig1(result, args.out, dpi=args.dpi)
    print(f"wrote {args.out}")
    if args.json:
        data = result.to_json()
        if not args.from_json:
            data["total_seconds"] = total
        with open(args.json, "w") as fh:
            json.dump(data, fh)
        print(f"wrote {args.json}")
    return summary


if __name__ == "__main__":
    main()
