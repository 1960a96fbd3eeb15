"""Numerical checks of the formulas in docs/stax-semantics.md against neural-tangents 0.6.5.

Run in the peer venv (bash benchmarks/setup_peer_venv.sh /tmp/ntkrs-peer-venv):

    /tmp/ntkrs-peer-venv/bin/python benchmarks/_nt_peer_semantics_check.py

Every check builds a tiny network in NT, computes its kernel, and compares it with a direct numpy
evaluation of the memo's formula (loops over positions; no NT code reused). Prints one line per
check with the max relative difference; exits 1 if any exceeds 1e-12.
"""

import itertools
import sys
import warnings

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)
warnings.simplefilter("ignore")
from neural_tangents import stax  # noqa: E402

rng = np.random.default_rng(5)
FAIL = []


def check(name, got, want, tol=1e-12):
    got, want = np.asarray(got, float), np.asarray(want, float)
    assert got.shape == want.shape, (name, got.shape, want.shape)
    err = np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-300)
    print(f"{'ok ' if err <= tol else 'BAD'} {name:70s} rel err {err:.1e}")
    if err > tol:
        FAIL.append(name)


# ----------------------------------------------------------------------------------------------
# spatial index maps (per axis): out position o, filter offset d -> input index or None (zero pad)
# ----------------------------------------------------------------------------------------------


def axis_map(L, f, s, padding):
    if padding == "VALID":
        out, lo = (L - f) // s + 1, 0
    else:  # SAME and CIRCULAR use lax's SAME pads
        out = -(-L // s)
        lo = max((out - 1) * s + f - L, 0) // 2
    m = {}
    for o in range(out):
        for d in range(f):
            i = o * s + d - lo
            if padding == "CIRCULAR":
                i %= L
            m[o, d] = i if 0 <= i < L else None
    return out, m


def positions_map(shape, filt, strides, padding):
    """Per axis maps combined: out multi-index -> list over multi-offsets of input multi-index|None."""
    maps = [axis_map(L, f, s, padding) for L, f, s in zip(shape, filt, strides, strict=True)]
    outs = tuple(m[0] for m in maps)
    table = {}
    for o in itertools.product(*[range(n) for n in outs]):
        table[o] = []
        for d in itertools.product(*[range(f) for f in filt]):
            idx = tuple(maps[a][1][o[a], d[a]] for a in range(len(shape)))
            table[o].append(None if None in idx else idx)
    return outs, table


def input_cov(x1, x2):
    """K[n1, n2, p, p'] (p, p' multi-indices flattened later): x1[n1, p, :] . x2[n2, p', :] / C."""
    C = x1.shape[-1]
    k = np.einsum("apc,bqc->abpq", x1.reshape(x1.shape[0], -1, C), x2.reshape(x2.shape[0], -1, C))
    return k.reshape(x1.shape[0], x2.shape[0], *x1.shape[1:-1], *x2.shape[1:-1]) / C


def conv_cov(K, spatial, filt, strides, padding, W, b):
    """K'(o, o') = W²/|f| Σ_δ K(i(o, δ), i(o', δ)) + b²  (same offset δ on both sides; zero-padded
    entries contribute 0 and the divisor stays |f|)."""
    S = len(spatial)
    outs, tab = positions_map(spatial, filt, strides, padding)
    fsize = int(np.prod(filt))
    out = np.zeros(K.shape[:2] + outs + outs)
    for o in tab:
        for o2 in tab:
            acc = 0.0
            for i, j in zip(tab[o], tab[o2], strict=True):
                if i is not None and j is not None:
                    acc = acc + K[(slice(None), slice(None)) + i + j]
            out[(slice(None), slice(None)) + o + o2] = W**2 * acc / fsize + (0 if b is None else b**2)
    assert S == len(outs)
    return out


def pool_cov(K, spatial, window, strides, padding, kind, normalize_edges=False):
    """AvgPool: K'(o, o') = Σ_{δ, δ'} K(i(o, δ), i(o', δ')) / (n(o) n(o')), n = |window|, or with
    SAME + normalize_edges the number of in-range positions of the window; SumPool: no division."""
    outs, tab = positions_map(spatial, window, strides, padding)
    wsize = int(np.prod(window))
    out = np.zeros(K.shape[:2] + outs + outs)
    for o in tab:
        for o2 in tab:
            acc = 0.0
            for i in tab[o]:
                for j in tab[o2]:
                    if i is not None and j is not None:
                        acc = acc + K[(slice(None), slice(None)) + i + j]
            if kind == "avg":
                if padding == "SAME" and normalize_edges:
                    acc = acc / (sum(i is not None for i in tab[o]) * sum(j is not None for j in tab[o2]))
                else:
                    acc = acc / wsize**2
            out[(slice(None), slice(None)) + o + o2] = acc
    return out


def diag_positions(K, S):
    """K[:, :, p, p] for all p (the 'diagonal_spatial' part)."""
    shape = K.shape[2:2 + S]
    out = np.zeros(K.shape[:2] + shape)
    for p in itertools.product(*[range(n) for n in shape]):
        out[(slice(None), slice(None)) + p] = K[(slice(None), slice(None)) + p + p]
    return out


def nt_full(net, x1, x2, get="nngp"):
    """NT kernel of a network without readout, full spatial (N1, N2, H, H, W, W) -> (N1, N2, H, W, H, W)."""
    kern = net[2](x1, x2)
    k = np.asarray(getattr(kern, get))
    S = (k.ndim - 2) // 2
    if kern.is_reversed:  # NT returns an odd number of Conv layers' spatial axes reversed: (W, W, H, H)
        k = k.transpose((0, 1) + tuple(2 + 2 * (S - 1 - a) + j for a in range(S) for j in (0, 1)))
    perm = (0, 1) + tuple(2 + 2 * a for a in range(S)) + tuple(3 + 2 * a for a in range(S))
    return k.transpose(perm)


# ---------------------------------------------------------------------------------------------- 1-D
x1 = rng.standard_normal((3, 7, 2))
x2 = rng.standard_normal((2, 7, 2))
K0 = input_cov(x1, x2)
for f, s, pad in [(3, 1, "VALID"), (3, 1, "SAME"), (3, 1, "CIRCULAR"), (2, 1, "SAME"), (4, 1, "SAME"),
                  (2, 1, "CIRCULAR"), (3, 2, "VALID"), (3, 2, "SAME"), (4, 3, "CIRCULAR"), (7, 1, "VALID")]:
    net = stax.Conv(5, (f,), strides=(s,), padding=pad, W_std=1.3, b_std=0.2)
    check(f"1-D Conv f={f} s={s} {pad}: nngp full covariance", nt_full(net, x1, x2),
          conv_cov(K0, (7,), (f,), (s,), pad, 1.3, 0.2))
    # NTK of one conv on inputs: nngp without the bias... ntk = nngp (input ntk is 0) in ntk param
    check(f"1-D Conv f={f} s={s} {pad}: ntk == nngp", nt_full(net, x1, x2, "ntk"),
          conv_cov(K0, (7,), (f,), (s,), pad, 1.3, 0.2))
# two conv layers: NTK recursion Θ' = W² conv(Θ) + K'
net = stax.serial(stax.Conv(5, (3,), padding="SAME", W_std=1.3, b_std=0.2),
                  stax.Conv(5, (2,), padding="VALID", W_std=0.7, b_std=0.1))
K1 = conv_cov(K0, (7,), (3,), (1,), "SAME", 1.3, 0.2)
K2 = conv_cov(K1, (7,), (2,), (1,), "VALID", 0.7, 0.1)
T2 = conv_cov(K1, (7,), (2,), (1,), "VALID", 0.7, None) + K2
check("1-D Conv SAME then VALID: ntk = W² conv(Θ) + K'", nt_full(net, x1, x2, "ntk"), T2)
# standard parameterization: Θ' = C_in·|f|·conv_unscaled(K) + W² conv_unscaled(Θ) + 1 (bias)
net = stax.serial(stax.Conv(6, (3,), padding="SAME", W_std=1.3, b_std=0.2),
                  stax.Conv(5, (2,), padding="VALID", W_std=0.7, b_std=0.1, parameterization="standard"))
unscaled = conv_cov(K1, (7,), (2,), (1,), "VALID", 1.0, None)
T2s = 6 * 2 * unscaled + 0.7**2 * conv_cov(K1, (7,), (2,), (1,), "VALID", 1.0, None) + 1.0
check("1-D standard Conv: ntk = C_in·|f|·conv(K) + W²·conv(Θ) + 1", nt_full(net, x1, x2, "ntk"), T2s)
check("1-D standard Conv: nngp = W²·conv(K) + b² (width-free)", nt_full(net, x1, x2, "nngp"),
      conv_cov(K1, (7,), (2,), (1,), "VALID", 0.7, 0.1))
for w, s, pad, ne in [(2, 1, "VALID", False), (3, 1, "SAME", False), (3, 1, "SAME", True), (2, 2, "SAME", True),
                      (3, 2, "CIRCULAR", False), (4, 1, "SAME", True)]:
    for kind in ("avg", "sum"):
        if kind == "sum" and ne:
            continue
        pool = (stax.AvgPool((w,), strides=(s,), padding=pad, normalize_edges=ne) if kind == "avg"
                else stax.SumPool((w,), strides=(s,), padding=pad))
        net = stax.serial(stax.Conv(5, (3,), padding="SAME", W_std=1.3, b_std=0.2), pool)
        check(f"1-D {kind}Pool w={w} s={s} {pad} normalize_edges={ne}", nt_full(net, x1, x2),
              pool_cov(K1, (7,), (w,), (s,), pad, kind, ne))
# readouts
net = stax.serial(stax.Conv(5, (3,), padding="SAME", W_std=1.3, b_std=0.2), stax.Flatten())
check("Flatten: mean over positions of K(p, p)", net[2](x1, x2, "nngp"), diag_positions(K1, 1).mean(2))
net = stax.serial(stax.Conv(5, (3,), padding="SAME", W_std=1.3, b_std=0.2), stax.GlobalAvgPool())
check("GlobalAvgPool: mean over all (p, p') of K(p, p')", net[2](x1, x2, "nngp"), K1.mean((2, 3)))
net = stax.serial(stax.Conv(5, (3,), padding="SAME", W_std=1.3, b_std=0.2), stax.GlobalSumPool())
check("GlobalSumPool: sum over all (p, p') of K(p, p')", net[2](x1, x2, "nngp"), K1.sum((2, 3)))
net = stax.serial(stax.Conv(5, (3,), padding="SAME", W_std=1.3, b_std=0.2), stax.Flatten(),
                  stax.Dense(3, W_std=0.8, b_std=0.3, parameterization="standard"))
Kf = diag_positions(K1, 1).mean(2)
T1 = K1  # a conv on the inputs: Θ1 = K1
check("standard Dense after Flatten: n_in = L·C = 7·5", net[2](x1, x2, "ntk"),
      7 * 5 * Kf + 0.8**2 * diag_positions(T1, 1).mean(2) + 1.0)
net = stax.serial(stax.Conv(5, (3,), padding="SAME", W_std=1.3, b_std=0.2), stax.Dense(4, W_std=0.9, b_std=0.4))
check("Dense on (N, L, C): acts on channels, every position pair: W² K(p, p') + b²", nt_full(net, x1, x2),
      0.9**2 * K1 + 0.4**2)

# ---------------------------------------------------------------------------------------------- 2-D
y1 = rng.standard_normal((2, 5, 6, 2))
y2 = rng.standard_normal((2, 5, 6, 2))
L0 = input_cov(y1, y2)
for filt, strides, pad in [((3, 3), (1, 1), "SAME"), ((2, 3), (2, 1), "SAME"), ((3, 2), (1, 2), "VALID"),
                           ((3, 3), (2, 2), "CIRCULAR"), ((1, 4), (1, 1), "CIRCULAR"), ((4, 1), (3, 2), "SAME")]:
    net = stax.Conv(4, filt, strides=strides, padding=pad, W_std=1.1, b_std=0.3)
    check(f"2-D Conv {filt} strides {strides} {pad}", nt_full(net, y1, y2),
          conv_cov(L0, (5, 6), filt, strides, pad, 1.1, 0.3))
# two convs (NT's is_reversed bookkeeping), non-square filters and strides
net = stax.serial(stax.Conv(4, (2, 3), strides=(2, 1), padding="SAME", W_std=1.1, b_std=0.3),
                  stax.Conv(4, (3, 1), strides=(1, 2), padding="CIRCULAR", W_std=0.9))
L1 = conv_cov(L0, (5, 6), (2, 3), (2, 1), "SAME", 1.1, 0.3)
L2 = conv_cov(L1, (3, 6), (3, 1), (1, 2), "CIRCULAR", 0.9, None)
check("2-D Conv (2,3)/(2,1) SAME then (3,1)/(1,2) CIRCULAR", nt_full(net, y1, y2), L2)
net = stax.serial(stax.Conv(4, (3, 3), padding="SAME", W_std=1.1, b_std=0.3),
                  stax.AvgPool((2, 3), strides=(2, 1), padding="SAME", normalize_edges=True))
L1 = conv_cov(L0, (5, 6), (3, 3), (1, 1), "SAME", 1.1, 0.3)
check("2-D AvgPool (2,3)/(2,1) SAME normalize_edges", nt_full(net, y1, y2),
      pool_cov(L1, (5, 6), (2, 3), (2, 1), "SAME", "avg", True))
net = stax.serial(stax.Conv(4, (3, 3), padding="SAME", W_std=1.1, b_std=0.3), stax.LayerNorm(axis=(1, 2, 3)))


def mean_own_variance(y):
    """mean over positions of K(y_n, y_n; p, p) after the 3x3 SAME conv, per sample."""
    return np.array([diag_positions(conv_cov(input_cov(y[i:i + 1], y[i:i + 1]), (5, 6), (3, 3), (1, 1), "SAME",
                                             1.1, 0.3), 2)[0, 0].mean() for i in range(len(y))])


q1, q2 = mean_own_variance(y1), mean_own_variance(y2)
check("LayerNorm(axis=(1,2,3)): K(p,p') / sqrt((eps + mean_p q1(p)) (eps + mean_p q2(p)))", nt_full(net, y1, y2),
      L1 / np.sqrt((1e-12 + q1)[:, None, None, None, None, None] * (1e-12 + q2)[None, :, None, None, None, None]))

# ---------------------------------------------------------------------------------------------- dense
z1 = rng.standard_normal((4, 3))
z2 = rng.standard_normal((3, 3))
G = z1 @ z2.T / 3
g1 = (z1 * z1).sum(1) / 3
g2 = (z2 * z2).sum(1) / 3
net = stax.serial(stax.Dense(8, W_std=1.2, b_std=0.3), stax.FanOut(2),
                  stax.parallel(stax.Dense(3, W_std=0.7), stax.Dense(9, W_std=2.0, b_std=0.5)), stax.FanInConcat())
Ka = 1.44 * G + 0.09
check("FanInConcat: (3·K_a + 9·K_b)/12, widths 3 and 9", net[2](z1, z2, "nngp"),
      (3 * 0.49 * Ka + 9 * (4.0 * Ka + 0.25)) / 12)
check("FanInConcat: NTK averaged with the same weights", net[2](z1, z2, "ntk"),
      (3 * (0.49 * Ka + 0.49 * Ka) + 9 * (4.0 * Ka + 0.25 + 4.0 * Ka)) / 12)
net = stax.serial(stax.Dense(8, W_std=1.2, b_std=0.3), stax.FanOut(2),
                  stax.parallel(stax.Dense(4, W_std=0.7), stax.Dense(4, W_std=2.0, b_std=0.5)), stax.FanInProd())
Kb = 4.0 * Ka + 0.25
check("FanInProd: K_a·K_b", net[2](z1, z2, "nngp"), 0.49 * Ka * Kb)
check("FanInProd: Θ_a·K_b + K_a·Θ_b", net[2](z1, z2, "ntk"), (0.49 * Ka + 0.49 * Ka) * Kb + 0.49 * Ka * (Kb + 4 * Ka))
net = stax.serial(stax.Dense(8, W_std=1.2, b_std=0.3), stax.Dropout(0.7), stax.Dense(1, W_std=0.9, b_std=0.2))
Kxx = 1.44 * (z1 @ z1.T / 3) + 0.09
Dm = Kxx + np.diag(np.diag(Kxx)) * (1 / 0.7 - 1)
check("Dropout(0.7) train, k(x1, None): diagonal × 1/0.7 then Dense", net[2](z1, None, "nngp"), 0.81 * Dm + 0.04)
check("Dropout(0.7) train, k(x1, x2): unchanged", net[2](z1, z2, "nngp"), 0.81 * Ka + 0.04)
check("Dropout(0.7) train, k(x1, x1.copy()): diagonal × 1/0.7 too (values compared)",
      net[2](z1, z1.copy(), "nngp"), 0.81 * Dm + 0.04)
check("Dropout NTK, k(x1, None): Θ' = K' + W²·Θ_dropped (Θ before = K: diagonal × 1/0.7)",
      net[2](z1, None, "ntk"), 0.81 * Dm + 0.04 + 0.81 * Dm)
for eps in (1e-12, 0.5):
    net = stax.serial(stax.Dense(8, W_std=1.2, b_std=0.3), stax.LayerNorm(eps=eps))
    q1_, q2_ = 1.44 * g1 + 0.09, 1.44 * g2 + 0.09
    check(f"LayerNorm(eps={eps}): K / sqrt((q1 + eps)(q2 + eps)) (no centring)", net[2](z1, z2, "nngp"),
          Ka / np.sqrt(np.outer(q1_ + eps, q2_ + eps)))
    check(f"LayerNorm(eps={eps}): Θ / sqrt((q1 + eps)(q2 + eps))", net[2](z1, z2, "ntk"),
          Ka / np.sqrt(np.outer(q1_ + eps, q2_ + eps)))  # Θ after Dense on inputs = K
net = stax.serial(stax.Dense(5, W_std=1.2, b_std=0.3, parameterization="standard"), stax.Relu(),
                  stax.Dense(2, W_std=0.8, b_std=0.1, parameterization="standard"))
K1d = 1.44 * G + 0.09
T1d = 3 * G + 1.0  # n_in·K_in + W²·0 + 1
q1d, q2d = 1.44 * g1 + 0.09, 1.44 * g2 + 0.09
rho = np.clip(K1d / np.sqrt(np.outer(q1d, q2d)), -1, 1)
th = np.arccos(rho)
Krelu = np.sqrt(np.outer(q1d, q2d)) * (np.sin(th) + (np.pi - th) * np.cos(th)) / (2 * np.pi)
check("standard Dense: Θ' = n_in·K_in + W²·Θ_in + 1 (n_in = 5 after Relu)", net[2](z1, z2, "ntk"),
      5 * Krelu + 0.64 * T1d * (np.pi - th) / (2 * np.pi) + 1.0)

print(f"\n{len(FAIL)} failures" + (": " + ", ".join(FAIL) if FAIL else ""))
sys.exit(1 if FAIL else 0)
