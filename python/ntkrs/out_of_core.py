"""Out-of-core plumbing of :meth:`ntkrs.Network.kernel`: the ``memory_limit`` argument and the
``out=`` targets (``.npy`` paths, writable memmaps or arrays, one per kernel)."""

from __future__ import annotations

import numbers
import os
from typing import Any

import numpy as np

from . import _core

__all__ = ["DEFAULT_MEMORY_LIMIT", "out_targets", "parse_memory_limit"]

DEFAULT_MEMORY_LIMIT = 1 << 30


def parse_memory_limit(value: int | str) -> int:
    """Bytes from an int or a string such as ``"2GB"`` (powers of 1000), ``"512MiB"`` (powers of
    1024) or ``"1000"``; ``ValueError``/``TypeError`` otherwise."""
    if isinstance(value, bool):
        raise TypeError("memory_limit: expected a number of bytes or a string such as '2GB', got bool")
    if isinstance(value, numbers.Integral):
        if value <= 0:
            raise ValueError(f"memory_limit: must be a positive number of bytes, got {value}")
        return int(value)
    if isinstance(value, str):
        return _core.parse_bytes(value)
    raise TypeError(f"memory_limit: expected a number of bytes or a string such as '2GB', got {value!r}")


def _backing_file(a: Any) -> str | None:
    """The file an array maps (an ``np.memmap`` or a view of one), else ``None``."""
    while isinstance(a, np.ndarray):
        name = getattr(a, "filename", None)
        if isinstance(a, np.memmap) and name:
            return os.fspath(name)
        a = a.base
    return None


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def out_targets(out: Any, names: tuple[str, ...], shape: tuple[int, int],
                dt: np.dtype, inputs: dict[str, Any] | None = None) -> dict[str, tuple[Any, bool]]:
    """``{kernel name: (path str or array, release pages)}`` for an ``out`` argument.

    ``inputs`` (``{"x1": array, "x2": array}``, as the caller passed them) are checked against the
    targets: a path naming the file an input maps (``np.load(..., mmap_mode=...)``), or an array
    sharing memory with an input, is refused, since the kernel would overwrite its own inputs."""
    if isinstance(out, dict):
        if set(out) != set(names):
            raise ValueError(f"out: a dict needs exactly the keys {list(names)} of get, got {sorted(map(str, out))}")
        items = {n: out[n] for n in names}
    elif isinstance(out, (tuple, list)):
        if len(out) != len(names):
            raise ValueError(f"out: {len(out)} targets for {len(names)} kernel(s) {list(names)}")
        items = dict(zip(names, out, strict=True))
    elif len(names) == 1:
        items = {names[0]: out}
    else:
        raise ValueError(f"out: get={names!r} computes two kernels; pass one target each, as "
                         "out={'nngp': 'nngp.npy', 'ntk': 'ntk.npy'} or a tuple in the order of get")
    targets: dict[str, tuple[Any, bool]] = {}
    for n, t in items.items():
        if isinstance(t, (str, os.PathLike)):
            path = os.fspath(t)
            if not isinstance(path, str):
                raise TypeError(f"out: expected a str path, got bytes {path!r}")
            parent = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(parent):
                raise FileNotFoundError(f"out: the directory {parent!r} does not exist")
            targets[n] = (path, False)
        elif isinstance(t, np.ndarray):
            mode = getattr(t, "mode", None) if isinstance(t, np.memmap) else None
            if mode == "r" or not t.flags.writeable:
                raise ValueError("out: the array is read-only; open the memmap with mode='r+' or 'w+'")
            if t.shape != shape or t.dtype != dt or not t.flags.c_contiguous:
                raise ValueError(f"out: the array must be C-contiguous {dt} of shape {shape}, got "
                                 f"{'C-contiguous' if t.flags.c_contiguous else 'non-contiguous'} {t.dtype} "
                                 f"of shape {t.shape}")
            # pages of a shared file mapping can be handed back to the OS once written
            targets[n] = (t, mode in ("r+", "w+"))
        else:
            raise TypeError(f"out: expected a path, an np.memmap or a dict/tuple of them, got {type(t).__name__}")
    paths = [t for t, _ in targets.values() if isinstance(t, str)]
    if len({os.path.abspath(p) for p in paths}) != len(paths) or (
            len(paths) == 2 and _same_file(paths[0], paths[1])):
        raise ValueError("out: the two kernels need two different files")
    arrays = [t for t, _ in targets.values() if isinstance(t, np.ndarray)]
    if len(arrays) == 2 and np.may_share_memory(arrays[0], arrays[1]):
        raise ValueError("out: the two kernels need two different arrays")
    for arg, x in (inputs or {}).items():
        if x is None:
            continue
        src = _backing_file(x)
        for t, _ in targets.values():
            if isinstance(t, str):
                if src is not None and _same_file(t, src):
                    raise ValueError(f"out: {t!r} is the file {arg} is read from; writing the kernel there would "
                                     "destroy the inputs. Write it to another file")
            else:
                tf = _backing_file(t)
                if (isinstance(x, np.ndarray) and np.may_share_memory(t, x)) or (
                        src is not None and tf is not None and _same_file(tf, src)):
                    raise ValueError(f"out: the array shares memory with {arg}; writing the kernel there would "
                                     "overwrite the inputs while they are read. Pass another array")
    return targets


