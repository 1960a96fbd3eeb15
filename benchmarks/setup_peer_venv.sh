#!/usr/bin/env bash
# Create the isolated virtual environment that runs neural-tangents (NT) as a
# benchmark / cross-check PEER of ntkrs.
#
# NT is never a dependency of ntkrs: it lives only in this separate venv and is
# driven through benchmarks/_nt_peer.py, which must be run with this venv's
# python (it does not import ntkrs).
#
# Usage:
#   benchmarks/setup_peer_venv.sh [VENV_DIR] [--with-tensorflow]
#
#   VENV_DIR            where to create the venv (default /tmp/ntkrs-peer-venv).
#                       An existing venv there is reused (pip is idempotent).
#   --with-tensorflow   install NT's full declared dependency set, including
#                       tensorflow + tf2jax (~2.6 GB, pulls whatever tensorflow
#                       release pip resolves). Only needed for NT's
#                       `experimental.empirical_tf` module, never for kernels.
#   PYTHON=...          interpreter used to create the venv (default python3;
#                       tested with CPython 3.11).
#
# Default (minimal) install, ~0.4 GB:
#
#   pip install jax==0.4.30 jaxlib==0.4.30 "numpy<2" "scipy<1.14" \
#       "frozendict>=2.3.8"
#   pip install --no-deps neural-tangents==0.6.5
#
# Why --no-deps plus a shim: neural-tangents 0.6.5 declares tensorflow>=2.15 and
# tf2jax as hard requirements, and `import neural_tangents` eagerly imports
# `neural_tangents.experimental`, whose only content (`empirical_tf`) imports
# tensorflow, tf2jax and jax.experimental.jax2tf. Nothing in `stax`, `predict`
# or the empirical/Monte-Carlo kernels uses them. So the minimal install skips
# tensorflow/tf2jax and drops a tiny import hook (`_ntkrs_nt_shim.py`, loaded by
# a `.pth` file) into the venv: when tensorflow is not installed, it serves an
# empty placeholder for `neural_tangents.experimental` whose attributes raise
# AttributeError with an explanation. NT's own files are left untouched, and if
# tensorflow is present the hook steps aside.
set -euo pipefail

VENV_DIR=""
WITH_TF=0
for arg in "$@"; do
    case "$arg" in
        --with-tensorflow) WITH_TF=1 ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
            exit 0
            ;;
        -*)
            echo "unknown option: $arg" >&2
            exit 2
            ;;
        *)
            if [[ -n "$VENV_DIR" ]]; then
                echo "only one VENV_DIR may be given" >&2
                exit 2
            fi
            VENV_DIR="$arg"
            ;;
    esac
done
VENV_DIR="${VENV_DIR:-/tmp/ntkrs-peer-venv}"
PYTHON="${PYTHON:-python3}"

# Versions pinned so that timings and reference numbers are reproducible.
NT_PIN="neural-tangents==0.6.5"
CORE_PINS=("jax==0.4.30" "jaxlib==0.4.30" "numpy<2" "scipy<1.14")

start=$(date +%s)

if [[ ! -x "$VENV_DIR/bin/python" ]]; then
    echo "[setup_peer_venv] creating venv at $VENV_DIR with $PYTHON"
    "$PYTHON" -m venv "$VENV_DIR"
else
    echo "[setup_peer_venv] reusing existing venv at $VENV_DIR"
fi
VPY="$VENV_DIR/bin/python"
PIP=("$VPY" -m pip install --disable-pip-version-check --quiet)

if [[ "$WITH_TF" == 1 ]]; then
    echo "[setup_peer_venv] full install (tensorflow + tf2jax included)"
    "${PIP[@]}" "$NT_PIN" "${CORE_PINS[@]}" "tf2jax==0.3.6"
else
    echo "[setup_peer_venv] minimal install (no tensorflow)"
    "${PIP[@]}" "${CORE_PINS[@]}" "frozendict>=2.3.8"
    "${PIP[@]}" --no-deps "$NT_PIN"
fi

# Install the import hook (harmless when tensorflow is installed: it only acts
# when `tensorflow` cannot be found).
SITE="$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
cat >"$SITE/_ntkrs_nt_shim.py" <<'PY'
"""Let `import neural_tangents` work without tensorflow (installed by ntkrs).

neural-tangents eagerly imports `neural_tangents.experimental`, which only holds
the tensorflow-based `empirical_tf` helpers. When tensorflow is not installed,
this meta-path hook serves an empty placeholder package for it instead; reading
any attribute of the placeholder raises AttributeError with an explanation.
Everything else in neural-tangents (stax, predict, empirical, ...) is unaffected.
Created by ntkrs benchmarks/setup_peer_venv.sh; delete this file and
_ntkrs_nt_shim.pth to disable.
"""

import importlib.abc
import importlib.machinery
import importlib.util
import sys

_TARGET = "neural_tangents.experimental"


class _PlaceholderLoader(importlib.abc.Loader):
    def create_module(self, spec):
        return None  # default module creation

    def exec_module(self, module):
        def __getattr__(name):
            raise AttributeError(
                f"{_TARGET}.{name} is unavailable: this venv has no tensorflow "
                "(ntkrs peer venv, minimal install; rerun setup_peer_venv.sh "
                "with --with-tensorflow to get it)"
            )

        module.__getattr__ = __getattr__
        module.NTKRS_PLACEHOLDER = True


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname != _TARGET:
            return None
        if importlib.util.find_spec("tensorflow") is not None:
            return None  # real module can be imported: step aside
        return importlib.machinery.ModuleSpec(
            fullname, _PlaceholderLoader(), is_package=True
        )


if not any(isinstance(f, _Finder) for f in sys.meta_path):
    sys.meta_path.insert(0, _Finder())
PY
echo "import _ntkrs_nt_shim" >"$SITE/_ntkrs_nt_shim.pth"

echo "[setup_peer_venv] verifying import and a CPU kernel computation"
"$VPY" - <<'PY'
import jax

jax.config.update("jax_enable_x64", True)

import numpy as np

import neural_tangents as nt
from neural_tangents import stax

_, _, kernel_fn = stax.serial(
    stax.Dense(512, W_std=1.5, b_std=0.05), stax.Relu(), stax.Dense(1)
)
x = np.random.default_rng(0).standard_normal((6, 5))
k = jax.jit(kernel_fn, static_argnames="get")(x, None, get=("nngp", "ntk"))
ntk = np.asarray(k.ntk)
assert ntk.shape == (6, 6) and ntk.dtype == np.float64, (ntk.shape, ntk.dtype)
assert np.all(np.isfinite(ntk)) and np.allclose(ntk, ntk.T)
stubbed = vars(nt.experimental).get("NTKRS_PLACEHOLDER", False)
print(
    f"[setup_peer_venv] ok: neural_tangents {nt.__version__}, jax {jax.__version__}"
    f", devices {jax.devices()}, experimental placeholder={stubbed}"
)
PY

echo "[setup_peer_venv] done in $(($(date +%s) - start)) s; python: $VPY"
