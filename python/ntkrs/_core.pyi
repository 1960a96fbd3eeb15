"""Type stub of the compiled extension ``ntkrs._core`` (Rust, PyO3)."""

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

__version__: str
DEFAULT_QUAD_DEGREE: int

class NonFiniteError(ValueError):
    """An overflow or a divergent expectation (the core's ``Error::NonFinite``)."""

class Activation:
    """A nonlinearity of the core. ``kind`` is a key of :func:`activation_registry` (one of identity,
    relu, leaky_relu, ab_relu, abs, erf, sigmoid_like, gelu, sin, cos, rbf, exp, gaussian, sign,
    monomial, rectified_monomial, hermite, polynomial, tanh, sigmoid, softplus, silu, elu, selu, mish,
    elementwise; a test keeps this list equal to the registry), ``params`` its parameters in the
    registry's order (polynomial: the coefficients)."""

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

class Layer:
    """One layer or combinator of a network (the classes of ``ntkrs.layers`` hold one)."""

    @staticmethod
    def dense(out_dim: int, w_std: float = 1.0, b_std: float | None = None,
              parameterization: str = "ntk") -> Layer: ...
    @staticmethod
    def activation(act: Activation) -> Layer: ...
    @staticmethod
    def identity() -> Layer: ...
    @staticmethod
    def layer_norm(axes: Sequence[int], eps: float) -> Layer: ...
    @staticmethod
    def dropout(rate: float, mode: str) -> Layer:
        """``rate`` is the keep rate in (0, 1]; ``mode`` "train" or "test"."""
    @staticmethod
    def fan_out(num: int) -> Layer: ...
    @staticmethod
    def fan_in(kind: str, axis: int = -1) -> Layer:
        """``kind``: "sum", "prod" or "concat" (along ``axis``)."""
    @staticmethod
    def serial(layers: Sequence[Layer]) -> Layer: ...
    @staticmethod
    def parallel(layers: Sequence[Layer]) -> Layer: ...
    def check(self) -> None:
        """ValueError when the layer is invalid in every context (on raw inputs and on Gaussian
        branches alike)."""

class Network:
    """A network validated for raw inputs (ValueError naming the layer otherwise)."""

    def __init__(self, root: Layer) -> None: ...
    def out_dim(self, in_dim: int) -> int:
        """The output width for inputs of width ``in_dim``."""
    def has_dropout(self) -> bool:
        """Whether a Dropout layer is in train mode (then k(x, x) and k(x, y) differ on the diagonal)."""
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
        a fresh PATH.ntkrs-XXXXXXXX.partial, XXXXXXXX 8 random hex digits, synced and renamed when
        complete) or a writable C-ordered array of shape (N1, N2) and x1's dtype (release: hand
        written pages back to the OS; honoured only where the array lies in a shared file mapping,
        checked by the core), by row panels within memory_limit bytes. Returns timings and sizes
        (plan_s, gram_s, layers_s, wait_s, mirror_s, write_s, total_s, panels, panel_rows,
        buffer_sets, buffer_bytes, bytes_written)."""
    def __len__(self) -> int: ...
    def init(
        self, in_dim: int, seed: int = 0, sample: int = 0, float32: bool = False
    ) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """One (W (in, out), b (out,) | None) per Dense; draw number `sample` of `seed`."""
    def apply(
        self, params: Sequence[tuple[np.ndarray, np.ndarray | None]], x: np.ndarray, dropout_seed: int = 0,
        threads: int = 0,
    ) -> np.ndarray:
        """f(x) of shape (N, O); params (one pair per Dense, depth first) and x of one float dtype."""
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
        dropout_seed: int = 0,
        threads: int = 0,
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
        threads: int = 0,
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Mean traced empirical (nngp, ntk) over n_samples initialisations (and dropout masks)."""
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
        dropout_seed: int = 0,
        threads: int = 0,
    ) -> dict[str, object]:
        """Full-batch gradient descent; keys steps, f_train, f_test, loss_train, loss_test, ntk_train, params."""

def activation_registry() -> list[dict[str, object]]:
    """Every activation kind: class, key, aliases, params (name, default, integer, range, typical),
    numerical, tunable, doc."""
def parse_activation(text: str) -> tuple[str, list[float]]:
    """``NAME`` or ``NAME(p1, ...)`` as (registry key, parameters)."""
def parse_spec(text: str) -> dict[str, object]:
    """A ``--net`` spec (``[mlp|resnet:]ACT:DEPTH[,KEY=VALUE...]``) as mlp/resnet keyword arguments
    with ``kind``."""
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def simd_level() -> str: ...
def parse_bytes(text: str) -> int:
    """Bytes from "2GB" (powers of 1000), "512MiB" (powers of 1024) or "1000"; ValueError otherwise."""
def reserve_bytes() -> int:
    """Bytes of scratch the out-of-core path reserves within its memory limit."""
