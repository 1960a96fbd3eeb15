"""Every Python example of the README runs as written (in order, in one namespace, in a temporary
directory), so that the documentation stays true."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_the_readme_has_examples():
    assert len(BLOCKS) >= 8


def test_every_readme_example_runs(tmp_path, monkeypatch):
    pytest.importorskip("sklearn")
    pytest.importorskip("dask")
    pytest.importorskip("ipywidgets")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for i, block in enumerate(BLOCKS):
        try:
            exec(compile(block, f"README.md python block {i}", "exec"), namespace)  # noqa: S102 - our own docs
        except Exception as e:  # name the block that failed
            raise AssertionError(f"README python block {i} ({block.splitlines()[0]!r}) failed: {e!r}") from e
