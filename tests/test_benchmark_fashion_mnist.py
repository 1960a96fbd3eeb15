"""benchmarks/fashion_mnist.py end to end on small IDX files written here: the accuracies it reports
equal kernel regression recomputed independently (pixel blocks averaged by strided slices, a dense
``numpy.linalg.solve`` of ``K + εI``), for the MLP at 28×28 and the GAP CNN at 7×7."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import ntkrs as nk
import numpy as np
from ntkrs import stax
from test_loaders import write_idx

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "fashion_mnist.py"


def regression_accuracy(net, x, labels, xt, lt, g):
    k, kt = getattr(net.kernel(x), g), getattr(net.kernel(xt, x), g)
    eps = 1e-4 * np.mean(np.diag(k))
    pred = kt @ np.linalg.solve(k + eps * np.eye(len(k)), np.eye(10)[labels] - 0.1)
    return float(np.mean(pred.argmax(1) == lt))


def test_fashion_mnist_benchmark_reports_what_kernel_regression_gives(tmp_path):
    rng = np.random.default_rng(3)
    y = {"train": rng.integers(0, 10, 40), "t10k": rng.integers(0, 10, 15)}
    # images whose brightness pattern depends on the label, plus noise: better than chance
    x = {k: np.clip(rng.integers(0, 120, (len(v), 28, 28)) + 12 * v[:, None, None]
                    * (np.arange(28)[None, :, None] < 14), 0, 255) for k, v in y.items()}
    for k in y:
        write_idx(tmp_path / f"{k}-images-idx3-ubyte", x[k], True)
        write_idx(tmp_path / f"{k}-labels-idx1-ubyte", y[k], True)
    out = tmp_path / "rows.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(nk.__file__).resolve().parent.parent)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    r = subprocess.run([sys.executable, str(SCRIPT), "--data", str(tmp_path), "--sizes", "30", "--pools", "1",
                        "--gap-sizes", "20", "--gap-pools", "4", "--test", "12", "--nets", "mlp", "cnn-gap",
                        "--json", str(out)], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "| mlp | 28×28 | 30 | 12 |" in r.stdout and "| cnn-gap | 7×7 | 20 | 12 |" in r.stdout
    rows = {row["net"]: row for row in json.loads(out.read_text())["rows"]}
    xf = {k: v.astype(np.float64) / 255 for k, v in x.items()}
    mlp = nk.mlp(depth=3, width=512, activation="relu", W_std=1.4, b_std=0.1)
    conv = (stax.Conv(64, (3, 3), padding="SAME", W_std=1.4, b_std=0.1), stax.Relu())
    gap = stax.serial(*conv, *conv, *conv, stax.GlobalAvgPool(), stax.Dense(1, W_std=1.4, b_std=0.1))

    def blocks(a):  # 4×4 block means by strided slices
        return (sum(a[:, i::4, j::4] for i in range(4) for j in range(4)) / 16)[..., None]

    for g in ("nngp", "ntk"):
        want = regression_accuracy(mlp, xf["train"][:30].reshape(30, -1), y["train"][:30],
                                   xf["t10k"][:12].reshape(12, -1), y["t10k"][:12], g)
        assert rows["mlp"][f"acc_{g}"] == want
        want = regression_accuracy(gap, blocks(xf["train"][:20]), y["train"][:20], blocks(xf["t10k"][:12]),
                                   y["t10k"][:12], g)
        assert rows["cnn-gap"][f"acc_{g}"] == want
    assert rows["mlp"]["peak_rss"] > 0 and rows["cnn-gap"]["kernel_s"][0] > 0
