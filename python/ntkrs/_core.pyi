"""Type stub of the compiled extension ``ntkrs._core`` (Rust, PyO3)."""

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

__version__: str
DEFAULT_QUAD_DEGREE: int

class NonFiniteError(ValueError):
    """An overflow or a divergent expectation (the core's ``Error::NonFinite``)."""

class Activation:
    """A nonlinearity of the core. ``kind`` is one of identity, relu, leaky_relu, ab_relu, abs, erf,
    sigmoid_like, gelu, sin, cos, rbf, exp, gaussian, sign, monomial, rectified_monomial, hermite,
    polynomial, tanh, sigmoid, softplus, silu, elu, selu, mish, elementwise."""

    def __init__(
        self,
        kind: str,
        params: Sequence[float] = ...,
        quad_degree: int = ...,
        fn: Callable[[np.ndarray], np.ndarray] | None = ...,
        dfn: Callable[[np.ndarray], np.ndarray] | None = ...,
        name: str | None = ...,
    ) -> None: ...
    def maps(
        self, var1: npt.NDArray[np.float64], var2: npt.NDArray[np.float64], cov: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """(E[φ(u)φ(v)], E[φ'(u)φ'(v)]) on 1-D arrays of equal length."""

class Dense:
    def __init__(self, out_dim: int, w_std: float = 1.0, b_std: float | None = None,
                 parameterization: str = "ntk") -> None: ...

class Network:
    def __init__(self, layers: Sequence[Dense | Activation]) -> None: ...
    def kernel(
        self,
        x1: npt.NDArray[np.float32] | npt.NDArray[np.float64],
        x2: npt.NDArray[np.float32] | npt.NDArray[np.float64] | None = None,
        nngp: bool = True,
        ntk: bool = True,
        diagonal: bool = False,
        tile_size: int = 0,
        progress: Callable[[int, int], object] | None = None,
        threads: int = 0,
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(nngp, ntk) of shape (N1, N2), or (N1,) with diagonal=True; None where not asked.
        x1 and x2 are 2-D float arrays of one dtype (any strides). threads: 0 the shared pool,
        1 the calling thread only, n a pool of n threads for this call."""
    def kernel_to(
        self,
        x1: npt.NDArray[np.float32] | npt.NDArray[np.float64],
        x2: npt.NDArray[np.float32] | npt.NDArray[np.float64] | None,
        nngp: bool,
        ntk: bool,
        targets: Sequence[str | np.ndarray],
        release: Sequence[bool],
        memory_limit: int,
        tile_size: int = 0,
        threads: int = 0,
        progress: Callable[[int, int], object] | None = None,
    ) -> dict[str, float | int]:
        """Out of core: the requested kernels (NNGP first) into targets, each a .npy path (written to
        a fresh PATH.ntkrs-XXXXXXXX.partial, synced and renamed when complete) or a writable C-ordered
        array of shape (N1, N2) and x1's dtype (release: hand written pages back to the OS; honoured
        only where the array lies in a shared file mapping, checked by the core), by row
        panels within memory_limit bytes. Returns timings and sizes (plan_s, gram_s, layers_s,
        wait_s, mirror_s, write_s, total_s, panels, panel_rows, buffer_sets, buffer_bytes,
        bytes_written)."""
    def __len__(self) -> int: ...
    def init(
        self, in_dim: int, seed: int = 0, sample: int = 0, float32: bool = False
    ) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """One (W (in, out), b (out,) | None) per Dense; draw number `sample` of `seed`."""
    def apply(self, params: Sequence[tuple[np.ndarray, np.ndarray | None]], x: np.ndarray) -> np.ndarray:
        """f(x) of shape (N, O); params and x of one float dtype."""
    def empirical(
        self,
        params: Sequence[tuple[np.ndarray, np.ndarray | None]],
        x1: np.ndarray,
        x2: np.ndarray | None = None,
        nngp: bool = True,
        ntk: bool = True,
        trace: bool = True,
        per_layer: bool = False,
        progress: Callable[[int, int], object] | None = None,
    ) -> tuple[np.ndarray | None, np.ndarray | None, list[np.ndarray]]:
        """(nngp, ntk, ntk per Dense): (N1, N2) traced or (N1, N2, O, O)."""
    def monte_carlo(
        self,
        x1: np.ndarray,
        x2: np.ndarray | None = None,
        n_samples: int = 64,
        seed: int = 0,
        nngp: bool = True,
        ntk: bool = True,
        progress: Callable[[int, int], object] | None = None,
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Mean traced empirical (nngp, ntk) over n_samples initialisations."""
    def train(
        self,
        params: Sequence[tuple[np.ndarray, np.ndarray | None]],
        x: np.ndarray,
        y: np.ndarray,
        x_test: np.ndarray | None = None,
        y_test: np.ndarray | None = None,
        learning_rate: float = 1.0,
        steps: int = 100,
        record_every: int = 1,
        record_ntk: bool = False,
        progress: Callable[[int, int], object] | None = None,
    ) -> dict[str, object]:
        """Full-batch gradient descent; keys steps, f_train, f_test, loss_train, loss_test, ntk_train, params."""

def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def simd_level() -> str: ...
def parse_bytes(text: str) -> int:
    """Bytes from "2GB" (powers of 1000), "512MiB" (powers of 1024) or "1000"; ValueError otherwise."""
def reserve_bytes() -> int:
    """Bytes of scratch the out-of-core path reserves within its memory limit."""
